import OutboxSQL
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// After the server ends a session (`pg_terminate_backend`, as on a failover or an
/// administrator's kill), the connection comes back by itself.
@Suite(.timeLimit(.minutes(1)))
struct ReconnectTests {
    /// Ends session `pid` from another connection and waits (up to 5 s) until it is gone.
    static func terminate(_ pid: Int32, in database: TestDatabase) throws {
        let terminated = try database.scalar("SELECT pg_terminate_backend($1::integer, 5000)", [pid], as: Bool.self)
        try #require(terminated, "backend \(pid) did not end within 5 s")
    }

    /// Runs `query` once, accepting `.connectionLost` (the statement that discovers the
    /// loss may fail); any other error fails the test.
    static func firstStatementAfterTheKill(_ query: () throws -> Void) throws {
        do {
            try query()
        } catch let error as PostgresError where error.code == .connectionLost {
            #expect(!error.message.isEmpty)
        }
    }

    @Test func ensureConnectedReopensAConnectionWhoseBackendWasTerminated() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let killed = connection.backendPID
        try Self.terminate(killed, in: database)

        try connection.ensureConnected()
        try Self.firstStatementAfterTheKill { try connection.query("SELECT 1") }
        try connection.ensureConnected()

        let pid = try connection.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0)
        #expect(pid != killed)
        #expect(pid == connection.backendPID)
        // The session settings are restored on the new connection too.
        #expect(try connection.query("SHOW TimeZone")[0].decode(String.self, at: 0) == "UTC")
    }

    #if os(Linux)
    /// Linux's POLLRDHUP (the peer closed its end), which Glibc's Swift module does not export.
    static let peerClosed = Int16(0x2000)

    @Test func ensureConnectedNoticesAnIdleSessionTheServerEnded() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let killed = connection.backendPID
        try Self.terminate(killed, in: database)
        // Wait until the server has closed its end (the FATAL message is queued before
        // that), without reading anything: a bounded wait, not a sleep.
        var descriptor = pollfd(fd: connection.socket, events: Self.peerClosed, revents: 0)
        try #require(poll(&descriptor, 1, 5000) == 1, "the server did not close the socket within 5 s")

        try connection.ensureConnected()

        #expect(connection.backendPID != killed, "ensureConnected kept the dead session")
        #expect(try connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
    }
    #endif

    @Test func aStatementOnALostConnectionSaysSo() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        try Self.terminate(connection.backendPID, in: database)

        // Without ensureConnected the loss is reported, not hidden: as connectionLost
        // or, when the server's goodbye is read first, as its "terminating connection" error.
        let error = try #require(throws: PostgresError.self) { try connection.query("SELECT 1") }
        #expect(error.code == .connectionLost || error.sqlState == "57P01", "\(error)")
        try connection.ensureConnected()
        #expect(try connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
    }

    @Test func preparedStatementsArePreparedAgainAfterAReconnect() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let statement = PreparedStatement(name: "add_one", sql: "SELECT $1::int + 1")
        #expect(try connection.query(statement, [1])[0].decode(Int.self, at: 0) == 2)
        try Self.terminate(connection.backendPID, in: database)

        try connection.ensureConnected()
        try Self.firstStatementAfterTheKill { try connection.query(statement, [2]) }
        try connection.ensureConnected()
        #expect(try connection.query(statement, [3])[0].decode(Int.self, at: 0) == 4)
    }

    @Test func databaseClientReconnectsOnTheNextRun() async throws {
        let database = try TestDatabase(migrated: false)
        let client = DatabaseClient(target: database.target, name: "reconnect-test")
        defer { client.close() }
        let killed = try await client.run { $0.backendPID }
        try Self.terminate(killed, in: database)

        do {
            _ = try await client.run { try $0.query("SELECT 1")[0].decode(Int.self, at: 0) }
        } catch let error as PostgresError where error.code == .connectionLost {
            // Allowed: the statement that discovers the loss may fail.
        }
        let pid = try await client.run { try $0.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0) }
        #expect(pid != killed)
    }

    @Test func listenerReportsTheDisconnectAndListensAgain() async throws {
        let database = try TestDatabase(migrated: false)
        let observer = try database.connect()
        try await NotificationListener.withListener(target: database.target, channels: ["outbox_test"]) { listener in
            try await listener.connected()
            let listenerPID = try observer.query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'", [database.name])
            try #require(listenerPID.count == 1, "cannot find the listener's session in pg_stat_activity")
            try Self.terminate(try listenerPID[0].decode(Int32.self, at: 0), in: database)

            let lost = try await listener.next(within: .seconds(10), "the listener to report the disconnect") {
                if case .disconnected = $0 { return true }
                return false
            }
            if case .disconnected(let reason) = lost { #expect(!reason.isEmpty) }
            try await listener.connected()

            // It listens again: a new notification arrives.
            try observer.query("SELECT pg_notify('outbox_test', 'after the reconnect')")
            #expect(try await listener.notification(within: .seconds(1)).payload == "after the reconnect")
        }
    }
}
