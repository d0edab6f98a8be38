import Foundation
import OutboxSQL
import Testing
import TestSupport

/// A relay killed with SIGKILL mid-batch loses nothing: its leases expire and the
/// work is delivered again, duplicated only where a request was in flight.
@Suite(.timeLimit(.minutes(2)))
struct CrashRecoveryTests {
    @Test func aRestartedRelayDeliversEverythingAKilledOneLeft() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/sleep/100/crash"
        try ProcessTestSQL.subscribe(sql, name: "crash", url: receiver.url(path))
        let expected = try ProcessTestSQL.publish(sql, count: 1_000)

        // 20 in flight at 100 ms each: about 5 s of work, so the kill lands mid-way
        // even on a loaded machine.
        let first = try RelayProcess(database: database, environment: ["OUTBOX_MAX_IN_FLIGHT": "20"])
        try await waitForArrivals(count: 100, on: receiver, relays: [first], timeout: .seconds(30))
        await first.kill()
        let crash = try await CrashSnapshot(sql, receiver: receiver, path: path)
        #expect(!crash.delivering.isEmpty, "the kill should land mid-batch, with requests in flight")
        #expect(crash.received < expected.count, "the kill should land before everything was sent")

        let second = try RelayProcess(database: database)
        _ = try await waitForDeliveries(of: expected, at: path, on: receiver, relays: [second], timeout: .seconds(60))
        let succeeded = try await ProcessTestSQL.waitForDeliveries(
            sql, where: "status = 'succeeded'", count: expected.count, timeout: .seconds(20))
        #expect(succeeded == expected.count, "\(second.logTail())")
        #expect(try ProcessTestSQL.deliveries(sql, where: "status <> 'succeeded'") == 0)
        // Everything is recorded now, so the receiver's log is complete.
        let tally = DeliveryTally(expected: expected, requests: try receiver.requests(), path: path)
        #expect(tally.missing.isEmpty)
        #expect(Set(tally.repeated.keys).isSubset(of: crash.delivering),
                "only deliveries in flight at the kill may arrive twice: \(tally)")
        #expect(tally.duplicates <= crash.delivering.count)
        // Max in flight held before the kill: no more than 20 of the 100 ms answers overlapped. (Rows
        // `delivering` may be more: a claim reuses the slots of succeeded requests whose outcomes are
        // not recorded yet, sql/0014.)
        #expect(crash.mostOverlapping(answerTime: 0.1) <= 20)
        #expect(try await second.terminate(within: .seconds(10)) == .success, "\(second.logTail())")
    }

    @Test func aRunningReplicaRescuesTheWorkOfAKilledOne() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/sleep/200/rescue"
        try ProcessTestSQL.subscribe(sql, name: "rescue", url: receiver.url(path))
        let expected = try ProcessTestSQL.publish(sql, count: 1_500)

        // The victim starts alone, so the work in flight is surely its own.
        let victim = try RelayProcess(database: database)
        try await waitForArrivals(count: 100, on: receiver, relays: [victim], timeout: .seconds(30))
        // Between a batch recorded and the next claimed, for a moment nothing is in flight.
        try await waitUntil("the victim holds work") { try !leaseOwners(sql).isEmpty }
        let victimOwner = try #require(try leaseOwners(sql).first, "no delivery in flight: \(victim.logTail())")
        let survivor = try RelayProcess(database: database)
        try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) { $0.count == 2 }
        await victim.kill()
        try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(10)) { $0.count == 1 }
        let orphaned = Set(try sql.query(
            "SELECT event_id FROM outbox.deliveries WHERE status = 'delivering' AND lease_owner = $1", [victimOwner]
        ).rows.map { try $0.decode(String.self, at: 0) })
        #expect(!orphaned.isEmpty, "the victim should die holding work")

        _ = try await waitForDeliveries(of: expected, at: path, on: receiver, relays: [survivor], timeout: .seconds(60))
        let rescued = try await ProcessTestSQL.waitForDeliveries(
            sql, where: "status = 'succeeded'", count: expected.count, timeout: .seconds(20))
        #expect(rescued == expected.count, "\(survivor.logTail())")
        let tally = DeliveryTally(expected: expected, requests: try receiver.requests(), path: path)
        #expect(tally.missing.isEmpty)
        #expect(Set(tally.repeated.keys).isSubset(of: orphaned), "only the victim's work in flight may arrive twice: \(tally)")
        #expect(try sql.query("SELECT count(*) FROM outbox.deliveries WHERE lease_owner = $1", [victimOwner])[0]
            .decode(Int.self, at: 0) == 0)
        #expect(try await survivor.terminate(within: .seconds(10)) == .success, "\(survivor.logTail())")
    }

    /// The owners of the leases on deliveries in flight.
    private func leaseOwners(_ sql: Connection) throws -> Set<String> {
        Set(try sql.query("SELECT DISTINCT lease_owner FROM outbox.deliveries WHERE status = 'delivering'")
            .rows.map { try $0.decode(String.self, at: 0) })
    }
}

/// The database and receiver just after a relay died.
private struct CrashSnapshot {
    /// Event ids of deliveries the dead relay held.
    let delivering: Set<String>
    /// When the receiver logged each request (seconds), in order.
    let arrivals: [Double]
    /// Requests the receiver had logged.
    var received: Int { arrivals.count }

    init(_ sql: Connection, receiver: TestReceiver, path: String) async throws {
        try await ProcessTestSQL.waitForOtherSessionsToEnd(sql, timeout: .seconds(10))
        delivering = try ProcessTestSQL.eventIDs(sql, status: "delivering")
        arrivals = try receiver.requests().filter { $0.path == path }.map { $0.receivedAtMs / 1_000 }.sorted()
    }

    /// The most requests whose answers could have been open at once, each taking `answerTime`
    /// from its arrival: never more than the relay really had in flight (its answers took longer).
    func mostOverlapping(answerTime: Double) -> Int {
        var most = 0
        var first = 0
        for (index, arrival) in arrivals.enumerated() {
            while arrivals[first] + answerTime <= arrival { first += 1 }
            most = max(most, index - first + 1)
        }
        return most
    }
}
