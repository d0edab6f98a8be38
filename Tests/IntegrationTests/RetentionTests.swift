import Foundation
import Logging
import OutboxRelay
import OutboxSQL
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

/// SPEC §5 retention: `outbox.prune` (sql/0006_retention.sql) and the
/// `RetentionPruner` service. Rows are set up with SQL and backdated two hours;
/// the retention is one hour.
@Suite(.timeLimit(.minutes(2)))
struct RetentionTests {
    @Test func expiredSucceededDeliveriesTheirAttemptsAndFinishedEventsGo() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['order.*'])")
        let succeeded = try RetentionFixture.publish(sql, "order.created", count: 1)[0]
        let dead = try RetentionFixture.publish(sql, "order.created", count: 1)[0]
        let pending = try RetentionFixture.publish(sql, "order.created", count: 1)[0]
        let delivering = try RetentionFixture.publish(sql, "order.created", count: 1)[0]
        let recentlySucceeded = try RetentionFixture.publish(sql, "order.created", count: 1)[0]
        let unmatched = try RetentionFixture.publish(sql, "audit.note", count: 1)[0]
        let recentUnmatched = try RetentionFixture.publish(sql, "audit.note", count: 1)[0]
        try RetentionFixture.backdate(sql, events: [succeeded, dead, pending, delivering, recentlySucceeded, unmatched], by: "2 hours")
        try RetentionFixture.finish(sql, events: [succeeded], as: "succeeded", ago: "2 hours", attempts: 2)
        try RetentionFixture.finish(sql, events: [dead], as: "dead", ago: "2 hours", attempts: 3)
        try RetentionFixture.finish(sql, events: [recentlySucceeded], as: "succeeded", ago: "10 minutes", attempts: 1)
        try sql.query("UPDATE outbox.deliveries SET status = 'delivering', lease_owner = 'test', lease_expires_at = now() + interval '1 minute' WHERE event_seq = $1", [delivering])

        let counts = try RetentionFixture.prune(sql, retention: "1 hour", batchSize: 100)

        #expect(counts == [1, 2, 2], "deliveries, attempts, events")
        #expect(try RetentionFixture.remainingEvents(sql) == [dead, pending, delivering, recentlySucceeded, recentUnmatched])
        #expect(try RetentionFixture.deliveryStatuses(sql) == ["dead", "pending", "delivering", "succeeded"])
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts WHERE event_id = (SELECT event_id FROM outbox.events WHERE id = $1)", [dead], as: Int.self) == 3)
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts", as: Int.self) == 4)
        let deadLetter = try sql.query("SELECT event_type, subscription, attempts FROM outbox.dead_letters")
        #expect(deadLetter.count == 1)
        #expect(try deadLetter[0].decode(String?.self, at: 0) == "order.created")
        #expect(try deadLetter[0].decode(String.self, at: 1) == "s")
        #expect(try deadLetter[0].decode(Int.self, at: 2) == 3)

        #expect(try RetentionFixture.prune(sql, retention: "1 hour", batchSize: 100) == [0, 0, 0], "a second call finds nothing")
    }

    @Test func anEventStaysUntilItsLastDeliveryIsFinishedAndExpired() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('a', 'http://example.com/a', ARRAY['*'])")
        try sql.query("SELECT outbox.subscribe('b', 'http://example.com/b', ARRAY['*'])")
        let event = try RetentionFixture.publish(sql, "order.created", count: 1)[0]
        try RetentionFixture.backdate(sql, events: [event], by: "3 hours")
        try RetentionFixture.finish(sql, events: [event], as: "succeeded", ago: "2 hours", attempts: 1)
        try sql.query("""
            UPDATE outbox.deliveries
            SET status = 'dead'
            WHERE subscription_id = (SELECT id FROM outbox.subscriptions WHERE name = 'b')
            """)

        #expect(try RetentionFixture.prune(sql, retention: "1 hour", batchSize: 100) == [1, 1, 0])
        #expect(try RetentionFixture.remainingEvents(sql) == [event], "the dead letter keeps its event")
        #expect(try database.scalar("SELECT event_type FROM outbox.dead_letters", as: String?.self) == "order.created")

        // Replayed, delivered, and expired in turn: now the event has nothing left.
        let deadID = try database.scalar("SELECT delivery_id FROM outbox.dead_letters", as: Int64.self)
        try sql.query("SELECT outbox.replay($1)", [deadID])
        try RetentionFixture.finish(sql, events: [event], as: "succeeded", ago: "2 hours", attempts: 0)

        #expect(try RetentionFixture.prune(sql, retention: "1 hour", batchSize: 100) == [1, 1, 1])
        #expect(try RetentionFixture.remainingEvents(sql).isEmpty)
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 0)
    }

    @Test func oneCallDeletesAtMostABatchOldestFirst() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        let events = try RetentionFixture.expiredBacklog(sql, count: 35)

        #expect(try RetentionFixture.prune(sql, retention: "1 hour", batchSize: 10) == [10, 10, 10])
        // finish() completed the first events first: they go first.
        #expect(try RetentionFixture.remainingEvents(sql) == Array(events.dropFirst(10)))
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 25)
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts", as: Int.self) == 25)
    }

    @Test func thePrunerDeletesAWholeBacklogInOneRoundAndStopsPromptly() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        _ = try RetentionFixture.expiredBacklog(sql, count: 35)
        let logs = CapturedLogs()

        let pruner = RunningPruner(database: database, logs: logs, interval: .seconds(3_600), batchSize: 10)
        try await waitUntil("a round is logged") { !logs.messages("pruned expired deliveries").isEmpty }
        let stopping = ContinuousClock.now
        try await pruner.stop()

        #expect(ContinuousClock.now - stopping < .seconds(5), "graceful shutdown interrupts the hour-long wait")
        let rounds = logs.messages("pruned expired deliveries")
        #expect(rounds.count == 1)
        #expect(rounds.first?.metadata == ["deliveries": "35", "attempts": "35", "events": "35", "batches": "4"])
        #expect(try database.scalar("SELECT count(*) FROM outbox.events", as: Int.self) == 0)
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 0)
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts", as: Int.self) == 0)
        #expect(logs.messages(level: .error).isEmpty)
    }

    @Test func anOutageIsLoggedOnceAndPruningResumesAfterIt() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        _ = try RetentionFixture.expiredBacklog(sql, count: 3)
        // Every call fails while the function is away.
        try sql.execute("ALTER FUNCTION outbox.prune(interval, integer) RENAME TO prune_away")
        let logs = CapturedLogs()
        let pruner = RunningPruner(database: database, logs: logs, interval: .seconds(3_600), batchSize: 10)
        try await waitUntil("the first failure is logged") { !logs.messages(level: .error).isEmpty }

        try sql.execute("ALTER FUNCTION outbox.prune_away(interval, integer) RENAME TO prune")
        try await waitUntil("the backlog is pruned") { !logs.messages("pruned expired deliveries").isEmpty }
        try await pruner.stop()

        let errors = logs.messages(level: .error)
        #expect(errors.count == 1)
        #expect(errors.first?.metadata["error"]?.contains("outbox.prune") == true, "\(errors)")
        #expect(logs.messages(level: .notice).map(\.message) == ["database reachable again; pruning expired deliveries resumed"])
        #expect(try database.scalar("SELECT count(*) FROM outbox.events", as: Int.self) == 0)
    }

    @Test func concurrentCallersNeverFailNorCountARowTwice() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('a', 'http://example.com/a', ARRAY['*'])")
        try sql.query("SELECT outbox.subscribe('b', 'http://example.com/b', ARRAY['*'])")
        let events = try RetentionFixture.publish(sql, "order.created", count: 300)
        try RetentionFixture.backdate(sql, events: events, by: "3 hours")
        try RetentionFixture.finish(sql, events: events, as: "succeeded", ago: "2 hours", attempts: 2)

        let totals = try await withThrowingTaskGroup(of: [Int].self) { group in
            for name in ["one", "two"] {
                group.addTask {
                    let client = DatabaseClient(target: database.target, name: "prune-\(name)")
                    defer { client.close() }
                    var total = [0, 0, 0]
                    while true {
                        let batch = try await client.run { try RetentionFixture.prune($0, retention: "1 hour", batchSize: 7) }
                        total = zip(total, batch).map { $0 + $1 }
                        if batch == [0, 0, 0] { return total }
                    }
                }
            }
            return try await group.reduce(into: [0, 0, 0]) { sum, total in sum = zip(sum, total).map { $0 + $1 } }
        }
        // Both callers may each have taken one of an event's two deliveries at the
        // same moment, leaving the event to the next call's scan.
        let sweep = try RetentionFixture.prune(sql, retention: "1 hour", batchSize: 1_000)

        #expect(zip(totals, sweep).map { $0 + $1 } == [600, 1_200, 300], "deliveries, attempts, events")
        #expect(sweep[0] == 0 && sweep[1] == 0)
        #expect(try database.scalar("SELECT count(*) FROM outbox.events", as: Int.self) == 0)
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts", as: Int.self) == 0)
    }

    @Test func badArgumentsAreRefused() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        let negative = #expect(throws: PostgresError.self) { try RetentionFixture.prune(sql, retention: "-1 hour", batchSize: 10) }
        #expect(negative?.message.contains("retention must be zero or more") == true, "\(String(describing: negative))")
        let empty = #expect(throws: PostgresError.self) { try RetentionFixture.prune(sql, retention: "1 hour", batchSize: 0) }
        #expect(empty?.message.contains("batch_size must be at least 1") == true, "\(String(describing: empty))")
    }

    @Test func theMigrationAppliesAgainUnchangedWithDataInPlace() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        _ = try RetentionFixture.expiredBacklog(sql, count: 3)
        let file = RelayBinary.packageRoot.appendingPathComponent("sql/0006_retention.sql")
        let text = try String(contentsOf: file, encoding: .utf8)

        try sql.execute(text)
        try sql.execute(text)

        #expect(try database.scalar(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'outbox' AND indexname = 'events_created_at_idx'", as: Int.self) == 1)
        #expect(try RetentionFixture.prune(sql, retention: "1 hour", batchSize: 10) == [3, 3, 3])
    }
}

/// Rows for the retention tests, written with SQL as a host and the relay would leave them.
enum RetentionFixture {
    /// Publishes `count` events of `type`; returns their ids (outbox.events.id), in order.
    static func publish(_ sql: Connection, _ type: String, count: Int) throws -> [Int64] {
        try sql.query("""
            INSERT INTO outbox.events (event_type, payload)
            SELECT $1, jsonb_build_object('n', n)
            FROM generate_series(1, $2::integer) AS n
            RETURNING id
            """, [type, count]).rows.map { try $0.decode(Int64.self, at: 0) }
    }

    static func backdate(_ sql: Connection, events: [Int64], by age: String) throws {
        try sql.query("UPDATE outbox.events SET created_at = now() - $2::interval WHERE id = ANY ($1::bigint[])",
                      [events, age])
    }

    /// Marks the events' deliveries `status`, completed `ago` and a minute earlier
    /// still per later event (the first event completed first), with `attempts`
    /// attempt rows each.
    static func finish(_ sql: Connection, events: [Int64], as status: String, ago: String, attempts: Int) throws {
        try sql.query("""
            UPDATE outbox.deliveries AS d
            SET status = $2,
                attempts = d.attempts + $4::integer,
                completed_at = now() - $3::interval - ($5::bigint - d.event_seq) * interval '1 minute',
                lease_owner = NULL,
                lease_expires_at = NULL
            WHERE d.event_seq = ANY ($1::bigint[])
            """, [events, status, ago, attempts, events.max() ?? 0])
        try sql.query("""
            INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code)
            SELECT d.id, d.event_id, n, d.completed_at, 5, CASE WHEN d.status = 'succeeded' THEN 200 ELSE 500 END
            FROM outbox.deliveries AS d
            CROSS JOIN generate_series(1, $2::integer) AS n
            WHERE d.event_seq = ANY ($1::bigint[])
            """, [events, attempts])
    }

    /// `count` events with one subscription, each with one succeeded delivery and
    /// one attempt, all past a one-hour retention; returns the event ids.
    static func expiredBacklog(_ sql: Connection, count: Int) throws -> [Int64] {
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['*'])")
        let events = try publish(sql, "order.created", count: count)
        try backdate(sql, events: events, by: "3 hours")
        try finish(sql, events: events, as: "succeeded", ago: "2 hours", attempts: 1)
        return events
    }

    /// One `outbox.prune` call: [deliveries, attempts, events].
    static func prune(_ sql: Connection, retention: String, batchSize: Int) throws -> [Int] {
        let row = try sql.query("SELECT deliveries, attempts, events FROM outbox.prune($1::interval, $2::integer)",
                                [retention, batchSize])[0]
        return try (0..<3).map { try row.decode(Int.self, at: $0) }
    }

    static func remainingEvents(_ sql: Connection) throws -> [Int64] {
        try sql.query("SELECT id FROM outbox.events ORDER BY id").rows.map { try $0.decode(Int64.self, at: 0) }
    }

    static func deliveryStatuses(_ sql: Connection) throws -> [String] {
        try sql.query("SELECT status FROM outbox.deliveries ORDER BY event_seq").rows.map { try $0.decode(String.self, at: 0) }
    }
}

/// A `RetentionPruner` in a `ServiceGroup`, as `outbox-relay run` would run it.
struct RunningPruner {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(database: TestDatabase, logs: CapturedLogs, interval: Duration, batchSize: Int) {
        let logger = Logger(label: "retention-test") { _ in logs.handler }
        let pruner = RetentionPruner(
            target: database.target, retention: .seconds(3_600), interval: interval, batchSize: batchSize, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: pruner)], logger: logger))
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// Keeps every log line, for tests that check what was logged.
final class CapturedLogs: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let lines = Mutex<[Line]>([])

    var handler: Handler { Handler(logs: self) }

    func messages(_ message: String) -> [Line] { lines.withLock { $0.filter { $0.message == message } } }
    func messages(level: Logger.Level) -> [Line] { lines.withLock { $0.filter { $0.level == level } } }

    struct Handler: LogHandler {
        let logs: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let line = Line(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" })
            logs.lines.withLock { $0.append(line) }
        }
    }
}
