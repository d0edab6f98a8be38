import Foundation
import OutboxRelay
import OutboxSQL

/// A fresh, empty database on the test server, dropped when the value goes away.
///
/// The server comes from libpq's `PG…` variables (`scripts/test` starts one and
/// exports them). Without them the test fails loudly: it never skips.
public final class TestDatabase: Sendable {
    /// The database's name, e.g. `outbox_test_3f9c…`.
    public let name: String
    /// A conninfo naming host, port, user and this database.
    public let conninfo: String
    public let target: ConnectionTarget

    /// Creates the database; `migrated` applies the schema too.
    public init(migrated: Bool = true) throws {
        let server = try Self.serverConninfo()
        name = "outbox_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        conninfo = server + " dbname=\(name)"
        target = try ConnectionTarget(conninfo)
        let admin = try Connection(ConnectionTarget(server + " dbname=postgres"))
        // The name is ours (hex digits), so quoting it into the text is safe.
        try admin.execute("CREATE DATABASE \(name)")
        if migrated {
            try OutboxSchema.migrator.migrate(on: try connect())
        }
    }

    deinit {
        if let admin = try? Connection(ConnectionTarget(Self.serverConninfo() + " dbname=postgres")) {
            try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        }
    }

    /// A new connection to this database.
    public func connect() throws -> Connection {
        try Connection(target)
    }

    /// Runs one statement on a new connection and decodes the first column of the first row.
    public func scalar<T: PostgresDecodable>(_ sql: String, _ parameters: [any PostgresEncodable] = [], as type: T.Type = T.self) throws -> T {
        let result = try connect().query(sql, parameters)
        guard result.count > 0 else { throw TestDatabaseError("no rows from: \(sql)") }
        return try result[0].decode(T.self, at: 0)
    }

    /// host, port and user of the test server, from the `PG…` variables.
    static func serverConninfo() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        guard let host = environment["PGHOST"], let port = environment["PGPORT"] else {
            throw TestDatabaseError(
                "no PostgreSQL for the tests: PGHOST and PGPORT are not set. Run the tests with scripts/test, "
                    + "or start a server with eval \"$(scripts/dev-postgres start)\"")
        }
        let user = environment["PGUSER"] ?? "postgres"
        return "host=\(host) port=\(port) user=\(user)"
    }
}

/// A test database could not be set up.
public struct TestDatabaseError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
