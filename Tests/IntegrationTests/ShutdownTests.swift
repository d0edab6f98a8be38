import Foundation
import OutboxSQL
import Testing
import TestSupport

/// SIGTERM drains: the relay stops claiming, finishes or releases what it holds
/// within the grace period, and exits 0; nothing stays claimed by a dead process.
@Suite(.timeLimit(.minutes(2)))
struct ShutdownTests {
    @Test func sigtermUnderLoadExitsZeroAndLeavesNothingClaimed() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/sleep/50/drain"
        try ProcessTestSQL.subscribe(sql, name: "drain", url: receiver.url(path))
        let expected = try ProcessTestSQL.publish(sql, count: 1_000)

        // 10 in flight at 50 ms each: about 5 s of work, so SIGTERM lands mid-way
        // even on a loaded machine.
        let first = try RelayProcess(database: database, environment: [
            "OUTBOX_SHUTDOWN_GRACE": "5s", "OUTBOX_MAX_IN_FLIGHT": "10",
        ])
        try await waitForArrivals(count: 100, on: receiver, relays: [first], timeout: .seconds(30))
        // Exit 0 within the grace period (5 s) plus 5 s.
        #expect(try await first.terminate(within: .seconds(10)) == .success, "\(first.logTail())")
        #expect(try ProcessTestSQL.deliveries(sql, where: "status = 'delivering' AND lease_expires_at IS NULL") == 0)
        #expect(try ProcessTestSQL.deliveries(sql, where: "status = 'delivering'") == 0,
                "unfinished work should be released at shutdown")
        let sent = try receiver.requests().filter { $0.path == path }
        #expect(sent.count < expected.count, "SIGTERM should land while work remains")

        let second = try RelayProcess(database: database)
        let tally = try await waitForDeliveries(
            of: expected, at: path, on: receiver, relays: [second], timeout: .seconds(60))
        #expect(tally.missing.isEmpty)
        // 50 ms requests finish well within the 5 s grace, so each was recorded once.
        #expect(tally.duplicates == 0, "\(tally)")
        let succeeded = try await ProcessTestSQL.waitForDeliveries(
            sql, where: "status = 'succeeded'", count: expected.count, timeout: .seconds(20))
        #expect(succeeded == expected.count, "\(second.logTail())")
        #expect(try await second.terminate(within: .seconds(10)) == .success, "\(second.logTail())")
    }

    @Test func sigtermStopsClaimingAtOnce() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/sleep/20/stop"
        try ProcessTestSQL.subscribe(sql, name: "stop", url: receiver.url(path))
        try ProcessTestSQL.publish(sql, count: 2_000)
        let relay = try RelayProcess(database: database, environment: ["OUTBOX_MAX_IN_FLIGHT": "10"])
        try await waitForArrivals(count: 100, on: receiver, relays: [relay], timeout: .seconds(30))

        let signalledAtMs = Date().timeIntervalSince1970 * 1000
        #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
        // What was in flight (at most 10), and what was claimed while the signal was
        // being handled, may still arrive; a relay that keeps claiming sends hundreds.
        let sent = try receiver.requests().filter { $0.path == path }
        let late = sent.filter { $0.receivedAtMs > signalledAtMs }
        let lastMs = Int((late.map(\.receivedAtMs).max() ?? signalledAtMs) - signalledAtMs)
        #expect(late.count <= 30, "\(late.count) requests arrived after SIGTERM, the last \(lastMs) ms after it")
    }

    @Test func requestsOutlastingTheGraceAreReleasedUncharged() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/sleep/20000/slow"
        try ProcessTestSQL.subscribe(sql, name: "slow", url: receiver.url(path))
        try ProcessTestSQL.publish(sql, count: 20)

        let relay = try RelayProcess(database: database, environment: [
            "OUTBOX_SHUTDOWN_GRACE": "1s", "OUTBOX_TIMEOUT": "30s", "OUTBOX_LEASE": "60s",
        ])
        try await waitForArrivals(count: 20, on: receiver, relays: [relay], timeout: .seconds(30))
        let stopping = ContinuousClock.now
        #expect(try await relay.terminate(within: .seconds(6)) == .success, "\(relay.logTail())")
        #expect(ContinuousClock.now - stopping < .seconds(6))
        // Back to pending, due, without an attempt charged: another relay takes them at once.
        #expect(try ProcessTestSQL.deliveries(sql, where: """
            status = 'pending' AND attempts = 0 AND lease_owner IS NULL
              AND lease_expires_at IS NULL AND next_attempt_at <= now()
            """) == 20)
        #expect(try sql.query("SELECT count(*) FROM outbox.attempts")[0].decode(Int.self, at: 0) == 0)
    }

    @Test func anIdleRelayExitsZeroPromptly() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        let relay = try RelayProcess(database: database)
        try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) { $0.count == 1 }
        #expect(try await relay.terminate(within: .seconds(5)) == .success, "\(relay.logTail())")
    }
}
