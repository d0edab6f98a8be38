import Foundation
import OutboxSQL
import Testing
import TestSupport

/// A login user of the test server that is a member of some of the outbox group
/// roles, and how to connect as it to one test database.
///
/// Roles are cluster-wide and tests run in parallel, each in its own database: the
/// group roles may already exist (made by another test), so they are created only
/// when missing, and every login gets a name of its own. Grants are per database,
/// so each test grants in its own.
struct DatabaseLogin {
    let user: String
    /// The test database's conninfo with this user (libpq takes the last `user=`).
    let conninfo: String

    /// Creates the group roles when missing, grants them in `database`, and makes a
    /// login user that is a member of `roles`.
    init(_ database: TestDatabase, roles: [String]) throws {
        try Self.grantGroupRoles(in: database)
        user = "outbox_login_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        conninfo = database.conninfo + " user=\(user)"
        // Fixed names and our own hex digits: safe to put into the text.
        let membership = roles.isEmpty ? "" : " IN ROLE " + roles.joined(separator: ", ")
        try database.connect().execute("CREATE ROLE \(user) LOGIN\(membership)")
    }

    /// `outbox.create_roles()` then `outbox.grant_roles()`, as the schema's owner.
    static func grantGroupRoles(in database: TestDatabase) throws {
        let connection = try database.connect()
        try connection.query("SELECT outbox.create_roles()")
        try connection.query("SELECT outbox.grant_roles()")
    }

    /// A new connection as this user.
    func connect() throws -> Connection {
        try Connection(ConnectionTarget(conninfo))
    }

    /// OUTBOX_DATABASE_URL for a command or relay run as this user.
    var environment: [String: String] { ["OUTBOX_DATABASE_URL": conninfo] }
}

extension Connection {
    /// Expects `sql` to be refused with permission denied (SQLSTATE 42501).
    func expectDenied(
        _ sql: String, _ parameters: [any PostgresEncodable] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            _ = try query(sql, parameters)
            Issue.record("allowed, but should be denied: \(sql)", sourceLocation: sourceLocation)
        } catch let error as PostgresError {
            #expect(error.sqlState == "42501", "\(sql): \(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(sql): \(error)", sourceLocation: sourceLocation)
        }
    }
}
