import Foundation
import OutboxSQL
import TestSupport
import Testing

/// A server or network that goes silent (a hung pooler, a dropped route) never
/// hangs a statement: past its deadline the connection is closed, the statement
/// fails with `.connectionLost`, and the next one runs on a new connection.
/// Found by the network-fault drill (`scripts/drills network`).
@Suite(.timeLimit(.minutes(1)))
struct SilentServerTests {
    @Test func aStatementPastItsDeadlineFailsAndTheConnectionComesBack() async throws {
        let database = try TestDatabase(migrated: false)
        let proxy = try FaultProxy(upstreamPort: try Self.serverPort())
        defer { proxy.stop() }
        let connection = try Connection(ConnectionTarget(
            "host=127.0.0.1 port=\(proxy.port) user=\(ProcessInfo.processInfo.environment["PGUSER"] ?? "postgres") dbname=\(database.name)"))
        connection.statementDeadline = .seconds(1)
        #expect(try connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)

        try proxy.control("faults?blackhole=1")
        let start = ContinuousClock.now
        #expect {
            try connection.query("SELECT 2")
        } throws: { error in
            (error as? PostgresError)?.code == .connectionLost
        }
        #expect(ContinuousClock.now - start < .seconds(5), "the deadline, not TCP, ended the wait")

        try proxy.control("clear")
        try connection.ensureConnected()
        #expect(try connection.query("SELECT 3")[0].decode(Int.self, at: 0) == 3)
    }

    @Test func aDatabaseClientRecoversFromASilentServer() async throws {
        let database = try TestDatabase(migrated: false)
        let proxy = try FaultProxy(upstreamPort: try Self.serverPort())
        defer { proxy.stop() }
        let client = DatabaseClient(
            target: try ConnectionTarget("host=127.0.0.1 port=\(proxy.port) user=\(ProcessInfo.processInfo.environment["PGUSER"] ?? "postgres") dbname=\(database.name)"),
            name: "silent", statementDeadline: .seconds(1))
        defer { client.close() }
        #expect(try await client.run { try $0.query("SELECT 1")[0].decode(Int.self, at: 0) } == 1)
        try proxy.control("faults?blackhole=1")
        await #expect(throws: PostgresError.self) { try await client.run { _ = try $0.query("SELECT 2") } }
        try proxy.control("clear")
        #expect(try await client.run { try $0.query("SELECT 3")[0].decode(Int.self, at: 0) } == 3)
    }

    static func serverPort() throws -> Int {
        guard let port = ProcessInfo.processInfo.environment["PGPORT"].flatMap(Int.init) else {
            throw TestDatabaseError("PGPORT is not set: run the tests with scripts/test")
        }
        return port
    }
}
