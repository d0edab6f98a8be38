import Foundation
import OutboxSQL
import Testing
import TestSupport

/// "A slow or dead endpoint never slows the others" (SPEC §2): while one endpoint
/// holds every request for 5 s, another subscription's events arrive as fast as usual.
@Suite(.timeLimit(.minutes(2)))
struct IsolationTests {
    @Test func aSlowEndpointDoesNotDelayAFastOne() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let slowPath = "/sleep/5000/slow", fastPath = "/ok/fast"
        try sql.query("SELECT outbox.subscribe('slow', $1, ARRAY['slow.*'])", [receiver.url(slowPath)])
        try sql.query("SELECT outbox.subscribe('fast', $1, ARRAY['fast.*'])", [receiver.url(fastPath)])
        let relay = try RelayProcess(database: database, environment: ["OUTBOX_TIMEOUT": "10s", "OUTBOX_LEASE": "30s"])
        try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) { $0.count == 1 }

        let count = 50
        let slowEvents = try Self.publish(sql, type: "slow.ping", count: count).ids
        // The slow endpoint is now holding the relay's requests.
        try await waitForArrivals(count: 1, at: slowPath, on: receiver, relays: [relay], timeout: .seconds(10))
        let (fastEvents, publishedAtMs) = try Self.publish(sql, type: "fast.ping", count: count)
        _ = try await waitForDeliveries(of: fastEvents, at: fastPath, on: receiver, relays: [relay], timeout: .seconds(10))

        let arrivals = Dictionary(
            try receiver.requests().filter { $0.path == fastPath }.compactMap { request in request.webhookID.map { ($0, request.receivedAtMs) } },
            uniquingKeysWith: min)
        let latencies = fastEvents.compactMap { arrivals[$0] }.map { $0 - publishedAtMs }.sorted()
        let slowFinished = try ProcessTestSQL.deliveries(sql, where: "status = 'succeeded' AND subscription_id = (SELECT id FROM outbox.subscriptions WHERE name = 'slow')")
        #expect(latencies.count == count)
        // Measured from before the publishing transaction began, so commit time counts against the relay.
        #expect((latencies.last ?? .infinity) <= 2_000,
                "fast deliveries took up to \(Int(latencies.last ?? -1)) ms (median \(Int(latencies[latencies.count / 2])) ms) while the slow endpoint held requests")
        // The premise: the slow endpoint was busy the whole time.
        #expect(slowFinished < count, "all slow deliveries had finished: the test measured nothing")

        // And the slow subscription is not starved either: each of its requests takes 5 s, well inside the timeout.
        let slowTally = try await waitForDeliveries(of: slowEvents, at: slowPath, on: receiver, relays: [relay], timeout: .seconds(30))
        #expect(slowTally.duplicates == 0, "\(slowTally)")
        #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
    }

    /// Publishes `count` events of `type` in one transaction; returns their ids and the
    /// wall-clock time (ms since 1970, as the receiver logs it) just before it began.
    private static func publish(_ sql: Connection, type: String, count: Int) throws -> (ids: Set<String>, startedAtMs: Double) {
        let startedAtMs = Date().timeIntervalSince1970 * 1_000
        let result = try sql.query("""
            INSERT INTO outbox.events (event_type, payload)
            SELECT $1, jsonb_build_object('n', n)
            FROM generate_series(1, $2::integer) AS n
            RETURNING event_id
            """, [type, count])
        return (Set(try result.rows.map { try $0.decode(String.self, at: 0) }), startedAtMs)
    }
}
