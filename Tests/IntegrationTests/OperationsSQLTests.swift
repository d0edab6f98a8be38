import OutboxSQL
import TestSupport
import Testing

/// The operator's SQL (sql/0015_operations.sql) as a DBA calls it: the backlog's one
/// definition, secret rotation, and the views that never show an endpoint credential.
@Suite struct OperationsSQLTests {
    @Test func theBacklogCountsWaitingDueInFlightAndDeadPerSubscription() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('a', 'https://example.com/a', ARRAY['a.*'])")
        try sql.query("SELECT outbox.subscribe('b', 'https://example.com/b', ARRAY['b.*'])")
        for index in 1...4 { try sql.query("SELECT outbox.publish('a.x', '{}', event_id => $1)", ["a\(index)"]) }
        try sql.query("SELECT outbox.publish('b.x', '{}')")
        // Unread events are pending and due at once.
        #expect(try database.scalar("SELECT pending = 4 AND due = 4 AND dead = 0 FROM outbox.backlog WHERE subscription = 'a'", as: Bool.self))
        try QueuedDeliveries.store(sql)
        try sql.query("""
            UPDATE outbox.delivery_queue
            SET status = CASE event_id WHEN 'a1' THEN 'dead' ELSE status END,
                completed_at = CASE event_id WHEN 'a1' THEN now() END,
                next_attempt_at = CASE event_id WHEN 'a2' THEN now() + interval '1 hour' ELSE next_attempt_at END
            WHERE event_id IN ('a1', 'a2')
            """)
        let row = try sql.query("""
            SELECT pending, due, delivering, dead, oldest_pending_age IS NOT NULL AS aged, due_lag IS NOT NULL AS lagging
            FROM outbox.backlog WHERE subscription = 'a'
            """)[0]
        #expect(try row.decode(Int64.self, named: "pending") == 3)
        #expect(try row.decode(Int64.self, named: "due") == 2, "a2 waits an hour")
        #expect(try row.decode(Int64.self, named: "delivering") == 0)
        #expect(try row.decode(Int64.self, named: "dead") == 1)
        #expect(try row.decode(Bool.self, named: "aged") && row.decode(Bool.self, named: "lagging"))
        // subscription_health reads the same counts.
        #expect(try database.scalar("""
            SELECT bool_and(h.pending = b.pending AND h.dead = b.dead AND h.delivering = b.delivering)
            FROM outbox.subscription_health AS h JOIN outbox.backlog AS b ON b.subscription = h.subscription
            """, as: Bool.self))
    }

    @Test func rotateSecretKeepsTheOldOneForTheGraceAndRefusesANegativeGrace() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        let first = try sql.query("SELECT outbox.subscribe('a', 'https://example.com/a', ARRAY['*'])")[0].decode(String.self, at: 0)
        let rotated = try sql.query("SELECT secret, previous_secret_expires_at > now() + interval '59 minutes' AS later FROM outbox.rotate_secret('a', grace => interval '1 hour')")
        #expect(try rotated[0].decode(String.self, named: "secret") != first)
        #expect(try rotated[0].decode(Bool.self, named: "later"))
        #expect(try database.scalar("SELECT previous_secret FROM outbox.subscriptions", as: String.self) == first)
        #expect(try sql.query("SELECT * FROM outbox.rotate_secret('nope')").count == 0, "no row: no such subscription")
        let refused = try #require(throws: PostgresError.self) {
            try sql.query("SELECT * FROM outbox.rotate_secret('a', grace => interval '-1 second')")
        }
        #expect(refused.sqlState == "22023" && refused.message.contains("zero or more"))
    }

    @Test func deadLettersAndSettingsShowNoEndpointCredential() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("""
            INSERT INTO outbox.subscriptions (name, url, event_types, secret, headers)
            VALUES ('guarded', 'https://operator:pa55@example.com/in', '{*}', outbox.generate_secret(),
                    '{"authorization": "Bearer t0k", "x-team": "shop"}')
            """)
        try sql.query("SELECT outbox.publish('order.created', '{}')")
        try QueuedDeliveries.store(sql)
        try sql.query("UPDATE outbox.delivery_queue SET status = 'dead', completed_at = now()")
        #expect(try database.scalar("SELECT url FROM outbox.dead_letters", as: String.self) == "https://[redacted]@example.com/in")
        let settings = try sql.query("SELECT url, headers::text AS headers FROM outbox.subscription_settings")[0]
        #expect(try settings.decode(String.self, named: "url") == "https://[redacted]@example.com/in")
        let headers = try settings.decode(String.self, named: "headers")
        #expect(!headers.contains("t0k") && headers.contains("shop"), "\(headers)")
        #expect(try database.scalar("""
            SELECT count(*) FROM information_schema.columns
            WHERE table_schema = 'outbox' AND table_name = 'subscription_settings' AND column_name IN ('secret', 'previous_secret')
            """, as: Int64.self) == 0, "the view has no secret column at all")
    }
}
