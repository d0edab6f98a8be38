import Foundation
import OutboxRelay
import OutboxSQL
import Synchronization
import Testing
import TestSupport

/// The recorder writes a batch in one statement: no transaction waits on the
/// network between round trips, so a connection lost midway cannot leave the
/// deliveries' row locks held by a server session whose client is gone. Found by
/// the network drill: a black hole between a record's statements stranded its
/// locks and every later record of those rows waited on them.
@Suite(.timeLimit(.minutes(1)))
struct RecordingTests {
    @Test func aBatchIsRecordedWithoutATransactionOpenAcrossRoundTrips() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('gone', 'https://example.com/hook', ARRAY['*'])")
        try sql.query("SELECT outbox.publish('record.test', '{}'::jsonb, event_id => 'e1')")
        let proxy = try FaultProxy(upstreamPort: try #require(ProcessInfo.processInfo.environment["PGPORT"].flatMap(Int.init)))
        defer { proxy.stop() }
        let user = ProcessInfo.processInfo.environment["PGUSER"] ?? "postgres"
        let store = DeliveryStore(
            target: try ConnectionTarget("host=127.0.0.1 port=\(proxy.port) user=\(user) dbname=\(database.name)"),
            owner: "record-test", lease: .seconds(30))
        defer { store.close() }
        let claimed = try #require(try await store.claim(batchSize: 10, defaultMaxInFlight: 10).first)
        var random = SystemRandomNumberGenerator()
        let gone = AttemptVerdict(
            delivery: claimed,
            response: WebhookResponse(tag: claimed.deliveryID, startedAt: Date(), duration: .milliseconds(5), statusCode: 410,
                                      error: nil, retryAfter: nil, bodyExcerpt: []),
            schedule: RetrySchedule(intervals: [.seconds(1)]), now: Date(), random: &random)

        // Every round trip now takes 400 ms: a transaction spanning several would sit
        // "idle in transaction" on the server for that long, where the watcher sees it.
        try proxy.control("faults?latency_ms=200")
        let watcher = SessionStateWatcher(database: database)
        let changes = try await store.record([gone], breaker: CircuitBreakerSettings())
        let states = watcher.stop()

        #expect(!states.contains("idle in transaction"), "states seen: \(states)")
        #expect(changes.isEmpty, "one failure opens no circuit")
        #expect(try sql.query("SELECT enabled FROM outbox.subscriptions")[0].decode(Bool.self, at: 0) == false,
                "the 410 disabled the subscription in the same statement")
        #expect(try sql.query("SELECT status, last_status_code FROM outbox.deliveries").rows.map {
            "\(try $0.decode(String.self, at: 0)) \(try $0.decode(Int.self, at: 1))"
        } == ["pending 410"])
        #expect(try sql.query("SELECT count(*) FROM outbox.attempts")[0].decode(Int.self, at: 0) == 1)
    }
}

/// Samples, on its own thread, the states of the store's server sessions (all
/// sessions of the database but the watcher's own) until stopped.
private final class SessionStateWatcher: Sendable {
    private let seen = Mutex<(states: Set<String>, stopped: Bool)>(([], false))
    private let finished = DispatchSemaphore(value: 0)

    init(database: TestDatabase) {
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            guard let connection = try? database.connect() else { return }
            while !seen.withLock({ $0.stopped }) {
                let states = (try? connection.query(
                    "SELECT coalesce(state, '') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                ).rows.compactMap { try? $0.decode(String.self, at: 0) }) ?? []
                seen.withLock { $0.states.formUnion(states) }
                usleep(10_000)
            }
        }
    }

    /// Stops sampling and returns every state seen.
    func stop() -> Set<String> {
        seen.withLock { $0.stopped = true }
        finished.wait()
        return seen.withLock { $0.states }
    }
}
