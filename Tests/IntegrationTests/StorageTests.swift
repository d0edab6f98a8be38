import Foundation
import OutboxRelay
import OutboxSQL
import Synchronization
import TestSupport
import Testing

/// The storage of SPEC §10: fan-out by snapshot in the relay's claim
/// (`outbox.read_new_events`), which subscriptions get an event, time partitions
/// and their retention, and the migration from the schema before it. Driven
/// through the relay's own SQL (`claim_deliveries`, `record_attempts`), so each
/// step is exact and needs no HTTP.
@Suite(.timeLimit(.minutes(2)))
struct StorageTests {
    @Test func anEventWhoseTransactionCommitsLastIsStillDelivered() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['*'])")
        let early = try database.connect()
        try early.execute("BEGIN")
        try early.query("SELECT outbox.publish('order.created', '{}', event_id => 'started-first')")
        try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'committed-first')")

        #expect(try Claims.eventIDs(sql) == ["committed-first"])
        #expect(try Claims.eventIDs(sql) == [], "an open transaction's event is not seen, nor skipped")
        try early.execute("COMMIT")
        #expect(try Claims.eventIDs(sql) == ["started-first"])
        #expect(try Claims.eventIDs(sql) == [])
    }

    /// A claim reads new events with snapshots of its own; its answer must still carry every row it
    /// claimed when events commit meanwhile (an answer that joined them under an older snapshot
    /// dropped the newest: leased, never sent, stuck until the lease expired).
    @Test func aClaimAnswersEveryRowItClaimsWhileEventsCommit() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['*'])")
        let stop = Mutex(false)
        let published = Mutex(0)
        // Its own thread and connection: libpq blocks.
        let publishing = Thread {
            guard let publisher = try? database.connect() else { return }
            while !stop.withLock({ $0 }) {
                guard (try? publisher.query("SELECT outbox.publish('order.created', '{}')")) != nil else { return }
                published.withLock { $0 += 1 }
            }
        }
        publishing.start()
        defer { stop.withLock { $0 = true } }
        var answered = 0
        for _ in 0..<300 {
            answered += try Claims.eventIDs(sql, batchSize: 50).count
            let stranded = try database.scalar("SELECT count(*) FROM outbox.delivery_queue WHERE status = 'delivering'", as: Int.self)
            try #require(stranded == 0, "a claim leased \(stranded) deliveries it did not answer")
        }
        stop.withLock { $0 = true }
        try await waitUntil("the publisher stops") { publishing.isFinished }
        #expect(answered > 0 && published.withLock { $0 } > answered / 2, "events committed while the claims ran")
    }

    @Test func aSubscriptionGetsTheEventsThatCommitWhileItExistsIsEnabledAndMatches() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'before-subscription')")
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['order.*'])")
        try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'after-subscription')")
        try sql.query("SELECT outbox.publish('user.created', '{}', event_id => 'not-matching')")
        try sql.query("UPDATE outbox.subscriptions SET enabled = false WHERE name = 's'")
        try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'while-disabled')")
        #expect(try Claims.eventIDs(sql) == [], "a disabled subscription claims nothing")
        try sql.query("UPDATE outbox.subscriptions SET enabled = true WHERE name = 's'")
        try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'after-enabling')")
        try sql.query("UPDATE outbox.subscriptions SET event_types = ARRAY['user.*'] WHERE name = 's'")
        try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'old-pattern')")
        try sql.query("SELECT outbox.publish('user.created', '{}', event_id => 'new-pattern')")

        let pending = try sql.query(
            "SELECT event_id FROM outbox.deliveries WHERE status = 'pending' ORDER BY event_seq"
        ).rows.map { try $0.decode(String.self, at: 0) }
        #expect(pending == ["after-subscription", "after-enabling", "new-pattern"], "computed before the relay reads them")
        #expect(try Claims.eventIDs(sql) == ["after-subscription", "after-enabling", "new-pattern"])

        try sql.query("SELECT outbox.publish('user.created', '{}', event_id => 'before-removal')")
        try sql.query("DELETE FROM outbox.subscriptions WHERE name = 's'")
        #expect(try Claims.eventIDs(sql) == [], "a removed subscription receives nothing more")
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE status <> 'succeeded'", as: Int.self) == 0,
                "its history stays: succeeded deliveries are attempts")
    }

    @Test func aDrainCrossesPartitionBoundariesAndReadsEveryEventOnce() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['*'])")
        try sql.query("SELECT outbox.create_time_partitions('outbox.events', '1 minute', '5 minutes')")
        // Three partitions' worth, committed in an order that interleaves them.
        for offset in ["0", "2 minutes", "1 minute", "3 minutes"] {
            try sql.query("""
                INSERT INTO outbox.events (event_type, payload, created_at)
                SELECT 'order.created', jsonb_build_object('n', g), now() + $1::interval
                FROM generate_series(1, 250) AS g
                """, [offset])
        }
        #expect(try database.scalar(
            "SELECT count(DISTINCT tableoid) FROM outbox.events", as: Int.self) == 4, "four partitions hold them")
        var seen: [String] = []
        while true {
            let batch = try Claims.eventIDs(sql, batchSize: 90)
            if batch.isEmpty { break }
            seen += batch
        }
        #expect(seen.count == 1_000)
        #expect(Set(seen).count == 1_000, "no event read twice")
        #expect(try database.scalar("SELECT count(*) FROM outbox.unread_deliveries", as: Int.self) == 0)
    }

    @Test func retentionDropsWholePartitionsAndDeadLettersKeepTheirEvents() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('fast', 'http://example.com/f', ARRAY['*'])")
        // A partition of the last two hours, made by hand as a DBA may (the relay makes them ahead).
        try sql.execute("""
            CREATE TABLE outbox.events_old (LIKE outbox.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
            CREATE UNIQUE INDEX events_old_event_id_key ON outbox.events_old (event_id);
            """)
        try sql.query(
            "SELECT outbox.create_time_partitions('outbox.events', '1 minute', '2 minutes')")
        try sql.query("""
            DO $$ BEGIN
                EXECUTE format('ALTER TABLE outbox.events ATTACH PARTITION outbox.events_old FOR VALUES FROM (%L) TO (%L)',
                               now() - interval '2 hours', (SELECT min(lower_bound) FROM outbox.time_partitions('outbox.events')));
            END $$
            """)
        for name in ["delivered", "dead", "unread"] {
            try sql.query(
                "INSERT INTO outbox.events (event_id, event_type, payload, created_at) VALUES ($1, 'order.created', '{\"k\": 1}', now() - interval '1 hour')",
                [name])
        }
        let claimed = try Claims.claim(sql, batchSize: 2)
        #expect(claimed.map(\.eventID) == ["delivered", "dead"])
        try Claims.record(sql, claimed, outcomes: ["succeeded", "dead"])
        let before = try database.scalar("SELECT count(*) FROM outbox.time_partitions('outbox.events')", as: Int.self)

        let dropped = try database.scalar("SELECT outbox.drop_time_partitions('outbox.events', '0 seconds')", as: Int.self)

        #expect(dropped == 1, "the partition of the old events, whole")
        #expect(try database.scalar("SELECT count(*) FROM outbox.time_partitions('outbox.events')", as: Int.self) == before - 1)
        #expect(try database.scalar("SELECT to_regclass('outbox.events_old') IS NULL", as: Bool.self))
        let kept = try sql.query("SELECT event_id FROM outbox.events ORDER BY id").rows.map { try $0.decode(String.self, at: 0) }
        #expect(kept == ["dead", "unread"], "the dead letter's and the unread event move to the default partition")
        let deadLetter = try sql.query("SELECT event_id, payload::text, event_type FROM outbox.dead_letters")
        #expect(deadLetter.count == 1)
        #expect(try deadLetter[0].decode(String?.self, at: 1) == "{\"k\": 1}")
        #expect(try Claims.eventIDs(sql) == ["unread"], "an unread delivery survives its partition")
        try sql.query("SELECT outbox.replay(delivery_id) FROM outbox.dead_letters")
        #expect(try Claims.eventIDs(sql) == ["dead"], "and a dead letter can still be replayed")
    }

    @Test func thePartitionFunctionsRefuseABadIntervalOrRetention() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        for (statement, message) in [
            ("SELECT outbox.create_time_partitions('outbox.events', '30 seconds', '1 hour')", "at least 1 minute"),
            ("SELECT outbox.drop_time_partitions('outbox.events', '-1 day')", "retention must be zero or more"),
        ] {
            let error = #expect(throws: PostgresError.self) { try sql.query(statement) }
            #expect(error?.sqlState == "22023")
            #expect(error?.message.contains(message) == true, "\(String(describing: error))")
        }
        #expect(try database.scalar("SELECT count(*) FROM outbox.time_partitions('outbox.events')", as: Int.self) == 0)
    }

    @Test func migratingTheOldSchemaKeepsTheBacklogAttemptsAndDeadLetters() throws {
        let database = try TestDatabase(migrated: false)
        let sql = try database.connect()
        let old = Migrator(migrations: Array(OutboxSchema.migrations.prefix(7)), schema: "outbox", lockKey: 1)
        try old.migrate(on: sql)
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['*'])")
        for name in ["pending", "delivering", "dead", "succeeded"] {
            try sql.query("SELECT outbox.publish('order.created', '{}', event_id => $1)", [name])
        }
        try sql.execute("""
            UPDATE outbox.deliveries SET status = 'delivering', lease_owner = 'old', lease_expires_at = now() + interval '1 minute'
            WHERE event_id = 'delivering';
            UPDATE outbox.deliveries SET status = 'dead', attempts = 2, completed_at = now(), last_error = 'HTTP 500'
            WHERE event_id = 'dead';
            UPDATE outbox.deliveries SET status = 'succeeded', attempts = 2, completed_at = now() WHERE event_id = 'succeeded';
            INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code)
            SELECT d.id, d.event_id, n, now(), 1, CASE WHEN n = 2 AND d.status = 'succeeded' THEN 200 ELSE 500 END
            FROM outbox.deliveries AS d, generate_series(1, 2) AS n
            WHERE d.status IN ('dead', 'succeeded');
            """)

        try OutboxSchema.migrator.migrate(on: sql)

        let statuses = try sql.query("SELECT event_id, status, attempts FROM outbox.deliveries ORDER BY event_id").rows.map {
            "\(try $0.decode(String.self, at: 0))=\(try $0.decode(String.self, at: 1))/\(try $0.decode(Int.self, at: 2))"
        }
        #expect(statuses == ["dead=dead/2", "delivering=pending/0", "pending=pending/0", "succeeded=succeeded/2"])
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts", as: Int.self) == 4)
        #expect(try database.scalar("SELECT last_error FROM outbox.dead_letters", as: String.self) == "HTTP 500")
        try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'after-migration')")
        #expect(try Claims.eventIDs(sql).sorted() == ["after-migration", "delivering", "pending"])
        #expect(try database.scalar("SELECT count(*) FROM outbox.events", as: Int.self) == 5)
        #expect(throws: PostgresError.self, "a duplicate of an event in the old partition") {
            try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'pending')")
        }
    }
}

/// The relay's claim and record, called as it calls them.
enum Claims {
    struct Claimed {
        let deliveryID: Int64
        let eventID: String
        let subscriptionID: Int64
        let attempts: Int
    }

    /// `answered`: the owner's deliveries whose requests were answered, outcomes not recorded yet.
    static func claim(_ sql: Connection, batchSize: Int = 200, owner: String = "test", answered: [Int64] = []) throws -> [Claimed] {
        try sql.query(
            "SELECT delivery_id, event_id, subscription_id, attempts FROM outbox.claim_deliveries($1, 1000, $2, '1 minute', $3::bigint[]) ORDER BY delivery_id",
            [batchSize, owner, answered]
        ).rows.map {
            Claimed(deliveryID: try $0.decode(named: "delivery_id"), eventID: try $0.decode(named: "event_id"),
                    subscriptionID: try $0.decode(named: "subscription_id"), attempts: try $0.decode(named: "attempts"))
        }
    }

    /// Claims a batch and records every delivery in it as succeeded; returns the event ids, in claim order.
    static func eventIDs(_ sql: Connection, batchSize: Int = 200) throws -> [String] {
        let claimed = try claim(sql, batchSize: batchSize)
        try record(sql, claimed, outcomes: claimed.map { _ in "succeeded" })
        return claimed.map(\.eventID)
    }

    static func record(_ sql: Connection, _ claimed: [Claimed], outcomes: [String]) throws {
        guard !claimed.isEmpty else { return }
        let now = Date()
        try sql.query("""
            SELECT outbox.record_attempts('test', $1::bigint[], $2::text[], $3::bigint[], $4::integer[], $5::text[],
                                          $6::timestamptz[], $7::integer[], $8::text[], $9::timestamptz[],
                                          $10::double precision[], $11::text[])
            """, [
                claimed.map(\.deliveryID), claimed.map(\.eventID), claimed.map(\.subscriptionID),
                claimed.map { $0.attempts + 1 }, outcomes, claimed.map { _ in Date?.none },
                outcomes.map { $0 == "succeeded" ? 200 : 500 }, outcomes.map { $0 == "succeeded" ? nil : "HTTP 500" },
                claimed.map { _ in now }, claimed.map { _ in 1.0 }, claimed.map { _ in String?.none },
            ])
    }
}

/// Max in flight is counted as claims made minus claims ended; a claim whose row
/// disappears without a record must not hold its slot for ever.
@Suite(.timeLimit(.minutes(1)))
struct InFlightCountTests {
    @Test func upkeepMendsTheCountOfClaimsWhoseRowsWereDeletedByHand() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['*'])")
        try sql.query("UPDATE outbox.subscriptions SET max_in_flight = 2")
        try sql.query("SELECT outbox.publish('order.created', '{}') FROM generate_series(1, 5)")
        #expect(try Claims.claim(sql).count == 2)
        #expect(try Claims.claim(sql).isEmpty, "two in flight: no room")
        try sql.query("DELETE FROM outbox.delivery_queue")

        try sql.query("SELECT outbox.rescue_expired_leases()")

        #expect(try Claims.claim(sql).count == 2, "the slots of the deleted claims are free again")
        #expect(try database.scalar("SELECT delivering FROM outbox.subscription_health", as: Int.self) == 2)
    }

    @Test func aClaimReusesTheSlotsOfItsOwnAnsweredRequestsOnceAndNoOneElses() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('s', 'http://example.com/h', ARRAY['*'])")
        try sql.query("UPDATE outbox.subscriptions SET max_in_flight = 2")
        try sql.query("SELECT outbox.publish('order.created', '{}') FROM generate_series(1, 6)")
        let first = try Claims.claim(sql)
        #expect(first.count == 2)
        #expect(try Claims.claim(sql, owner: "other", answered: first.map(\.deliveryID)).isEmpty,
                "another relay's answered requests free nothing")
        let second = try Claims.claim(sql, answered: [first[0].deliveryID])
        #expect(second.count == 1, "one answered, unrecorded request: one slot")
        // The recorder writes the first outcome; the relay may still name it until it sees that.
        try Claims.record(sql, [first[0]], outcomes: ["succeeded"])
        #expect(try Claims.claim(sql, answered: [first[0].deliveryID]).isEmpty, "a recorded request is not freed twice")
        #expect(try Claims.claim(sql, answered: [first[1].deliveryID, second[0].deliveryID]).count == 2)
    }
}
