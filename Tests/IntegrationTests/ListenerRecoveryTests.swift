import Foundation
import OutboxSQL
import Testing
import TestSupport

/// NOTIFY is only a wake-up hint: when the relay's LISTEN connection is killed,
/// polling covers the gap and the listener comes back by itself.
@Suite(.timeLimit(.minutes(2)))
struct ListenerRecoveryTests {
    @Test func pollingDeliversWhileTheListenerIsDownAndTheListenerReturns() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/ok/listener-gap"
        try ProcessTestSQL.subscribe(sql, name: "gap", url: receiver.url(path))
        let relay = try RelayProcess(database: database, environment: ["OUTBOX_POLL_INTERVAL": "200ms"])
        let listener = try #require(try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) { $0.count == 1 }.first)
        var expected = try ProcessTestSQL.publish(sql, count: 20)
        _ = try await waitForDeliveries(of: expected, at: path, on: receiver, relays: [relay], timeout: .seconds(10))

        // Keep the listener from reconnecting: no new sessions on this database (the
        // relay's other sessions and ours stay), then kill it. The switch is made from
        // another database: PostgreSQL refuses it for the current one.
        let admin = try Connection(ConnectionTarget(database.conninfo + " dbname=postgres"))
        try admin.execute("ALTER DATABASE \(database.name) ALLOW_CONNECTIONS false")
        defer { try? admin.execute("ALTER DATABASE \(database.name) ALLOW_CONNECTIONS true") }
        try terminate(sql, backend: listener)
        try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(10)) { $0.isEmpty }
        expected.formUnion(try ProcessTestSQL.publish(sql, count: 20))
        _ = try await waitForDeliveries(of: expected, at: path, on: receiver, relays: [relay], timeout: .seconds(10))
        #expect(try ProcessTestSQL.listenerBackends(sql).isEmpty, "delivered by polling, with no listener")

        try admin.execute("ALTER DATABASE \(database.name) ALLOW_CONNECTIONS true")
        // The listener retries with a backoff of at most 5 s.
        let back = try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) { $0.count == 1 }
        #expect(!back.contains(listener))
        expected.formUnion(try ProcessTestSQL.publish(sql, count: 20))
        let tally = try await waitForDeliveries(of: expected, at: path, on: receiver, relays: [relay], timeout: .seconds(10))
        #expect(tally.duplicates == 0, "\(tally)")
        #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
    }

    @Test func notificationsWakeTheRelayAgainAfterTheListenerReconnects() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/ok/listener-back"
        try ProcessTestSQL.subscribe(sql, name: "back", url: receiver.url(path))
        // Polling this rarely cannot explain a delivery within the waits below.
        let relay = try RelayProcess(database: database, environment: ["OUTBOX_POLL_INTERVAL": "60s"])
        var listener = try #require(try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) { $0.count == 1 }.first)
        var expected: Set<String> = []
        for round in 1...2 {
            try terminate(sql, backend: listener)
            let replaced = try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) {
                $0.count == 1 && !$0.contains(listener)
            }
            listener = try #require(replaced.first)
            expected.formUnion(try ProcessTestSQL.publish(sql, count: 5))
            do {
                _ = try await waitForDeliveries(of: expected, at: path, on: receiver, relays: [relay], timeout: .seconds(10))
            } catch {
                Issue.record("round \(round): no delivery within 10 s of the publish: \(error)")
                return
            }
        }
        let tally = DeliveryTally(expected: expected, requests: try receiver.requests(), path: path)
        #expect(tally.duplicates == 0, "\(tally)")
        #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
    }

    /// Ends a session the way an operator or a failover would.
    private func terminate(_ sql: Connection, backend pid: Int32) throws {
        let ended = try sql.query("SELECT pg_terminate_backend($1)", [pid])[0].decode(Bool.self, at: 0)
        #expect(ended, "pg_terminate_backend(\(pid))")
    }
}
