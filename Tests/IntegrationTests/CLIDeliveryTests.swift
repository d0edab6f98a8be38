import Foundation
import OutboxSQL
import Testing
import TestSupport

/// `outbox-relay publish`, `deliveries`, `replay` and `status` against a real
/// database: what they print (tables and --json) and what they change.
@Suite(.timeLimit(.minutes(2)))
struct CLIDeliveryTests {
    /// Two subscriptions, `orders` (order.*) and `all` (*).
    static func database() throws -> TestDatabase {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('orders', 'https://example.com/orders', '{order.*}')")
        try sql.query("SELECT outbox.subscribe('all', 'https://example.com/all', '{*}')")
        return database
    }

    /// Makes the deliveries of `eventID` dead letters that died `daysAgo` days ago.
    static func makeDead(_ sql: Connection, eventID: String, daysAgo: Int = 0, subscription: String? = nil) throws {
        try QueuedDeliveries.store(sql)
        try sql.query("""
            UPDATE outbox.delivery_queue AS d
            SET status = 'dead', attempts = 3, last_status_code = 500, last_error = 'HTTP 500',
                completed_at = now() - make_interval(days => $2)
            FROM outbox.subscriptions AS s
            WHERE s.id = d.subscription_id AND d.event_id = $1 AND ($3::text IS NULL OR s.name = $3)
            """, [eventID, daysAgo, subscription])
    }

    @Test func publishStoresTheEventAndPrintsItsID() async throws {
        let database = try Self.database()
        let published = try await CLI.run(
            ["publish", "--type", "order.created", "--data", #"{"id": 42}"#, "--key", "order-42", "--header", "traceparent=00-abc-01"],
            database: database)
        #expect(published.status == 0, "\(published)")
        #expect(published.stdout.hasPrefix("EVENT ID"))
        let eventID = try database.scalar("SELECT event_id FROM outbox.events", as: String.self)
        #expect(published.tableRows == [[eventID, "2"]], "the event_id and how many deliveries it fanned out to")
        let row = try database.connect().query("SELECT event_type, payload::text, ordering_key, headers::text FROM outbox.events")[0]
        #expect(try row.decode(String.self, at: 0) == "order.created")
        #expect(try row.decode(String.self, at: 1) == #"{"id": 42}"#)
        #expect(try row.decode(String.self, at: 2) == "order-42")
        #expect(try row.decode(String.self, at: 3) == #"{"traceparent": "00-abc-01"}"#)

        let json = try await CLI.run(["publish", "--type", "invoice.paid", "--data", "[1,2]", "--id", "evt-7", "--json"], database: database)
        #expect(json.status == 0, "\(json)")
        let object = try json.jsonObject()
        #expect(object["event_id"] as? String == "evt-7")
        #expect(object["deliveries"] as? Int == 1)
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE event_id = 'evt-7'", as: Int.self) == 1)
    }

    @Test func deliveriesListsNewestFirstWithFilters() async throws {
        let database = try Self.database()
        let sql = try database.connect()
        for id in ["e1", "e2", "e3"] {
            try sql.query("SELECT outbox.publish('order.created', '{}', event_id => $1)", [id])
        }
        try Self.makeDead(sql, eventID: "e2", subscription: "orders")

        let table = try await CLI.run(["deliveries"], database: database)
        #expect(table.status == 0, "\(table)")
        #expect(table.stdout.hasPrefix("ID  "))
        #expect(table.tableRows.map { $0[1] } == ["e3", "e3", "e2", "e2", "e1", "e1"])
        let dead = try #require(table.tableRows.first { $0.contains("dead") })
        #expect(dead.contains("orders") && dead.contains("HTTP 500"))

        let all = try await CLI.run(["deliveries", "--json"], database: database).jsonArray()
        #expect(all.compactMap { $0["event_id"] as? String } == ["e3", "e3", "e2", "e2", "e1", "e1"], "newest event first")
        #expect(Set(all.compactMap { $0["id"] as? Int }).count == 6)
        let deadOnly = try await CLI.run(["deliveries", "--status", "dead", "--json"], database: database).jsonArray()
        #expect(deadOnly.count == 1)
        let letter = try #require(deadOnly.first)
        #expect(letter["event_id"] as? String == "e2")
        #expect(letter["subscription"] as? String == "orders")
        #expect(letter["event_type"] as? String == "order.created")
        #expect(letter["attempts"] as? Int == 3)
        #expect(letter["last_status_code"] as? Int == 500)
        #expect(letter["last_error"] as? String == "HTTP 500")
        #expect(letter["next_attempt_at"] is NSNull)
        #expect(letter["completed_at"] is String)

        let filtered = try await CLI.run(
            ["deliveries", "list", "--subscription", "all", "--status", "pending", "--limit", "1", "--json"], database: database)
        #expect(try filtered.jsonArray().map { $0["event_id"] as? String } == ["e3"])
        let byEvent = try await CLI.run(["deliveries", "--event", "e1", "--json"], database: database).jsonArray()
        #expect(Set(byEvent.compactMap { $0["subscription"] as? String }) == ["orders", "all"])
        let none = try await CLI.run(["deliveries", "--event", "nope"], database: database)
        #expect(none.status == 0 && none.stdout == "no deliveries\n")
    }

    @Test func purgeDeletesOldDeadLettersAndKeepsTheirAttemptHistory() async throws {
        let database = try Self.database()
        let sql = try database.connect()
        for id in ["old", "recent", "alive"] {
            try sql.query("SELECT outbox.publish('order.created', '{}', event_id => $1)", [id])
        }
        try Self.makeDead(sql, eventID: "old", daysAgo: 40)
        try Self.makeDead(sql, eventID: "recent", daysAgo: 5)
        try sql.query("""
            INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code)
            SELECT id, event_id, n, now(), 10, 500 FROM outbox.deliveries, generate_series(1, 3) AS n
            """)
        let scoped = try await CLI.run(
            ["deliveries", "purge", "--dead", "--older-than", "30d", "--subscription", "orders", "--json"], database: database)
        #expect(scoped.status == 0, "\(scoped)")
        #expect(try scoped.jsonObject()["purged"] as? Int == 1)
        let purged = try await CLI.run(["deliveries", "purge", "--dead"], database: database, environment: ["OUTBOX_OLDER_THAN": "30d"])
        #expect(purged.status == 0, "\(purged)")
        #expect(purged.tableRows == [["1"]])
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE event_id = 'old'", as: Int.self) == 0)
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts WHERE event_id = 'old'", as: Int.self) == 6,
                "attempts are history: retention drops them with their partition")
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 4, "recent dead letters and live work stay")
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts", as: Int.self) == 18)
        #expect(try database.scalar("SELECT count(*) FROM outbox.events", as: Int.self) == 3, "events are retention's business")
    }

    @Test func replayOneDeliveryOrEveryDeadLetterInBatches() async throws {
        let database = try Self.database()
        let sql = try database.connect()
        try sql.query("SELECT outbox.publish('order.created', '{}', event_id => 'e' || n) FROM generate_series(1, 600) AS n")
        try QueuedDeliveries.store(sql)
        try sql.query("UPDATE outbox.delivery_queue SET status = 'dead', attempts = 3, completed_at = now(), retry_step = 2")
        let one = try database.scalar("SELECT min(id) FROM outbox.deliveries", as: Int64.self)

        let single = try await CLI.run(["replay", "--delivery", String(one), "--json"], database: database)
        #expect(single.status == 0, "\(single)")
        let json = try single.jsonObject()
        #expect(json["delivery_id"] as? Int == Int(one))
        #expect(json["event_id"] as? String == "e1")
        #expect(json["status"] as? String == "pending")
        let row = try sql.query("SELECT status, attempts, retry_step, completed_at IS NULL FROM outbox.deliveries WHERE id = $1", [one])[0]
        #expect(try row.decode(String.self, at: 0) == "pending")
        #expect(try row.decode(Int.self, at: 1) == 3, "attempts number on")
        #expect(try row.decode(Int.self, at: 2) == 0, "a fresh retry schedule")
        #expect(try row.decode(Bool.self, at: 3))

        // 599 dead letters of `orders` and 600 of `all`: more than one batch of 500 each.
        let scoped = try await CLI.run(["replay", "--dead", "--subscription", "orders", "--json"], database: database)
        #expect(scoped.status == 0, "\(scoped)")
        let subscriptionOfOne = try database.scalar(
            "SELECT s.name FROM outbox.deliveries d JOIN outbox.subscriptions s ON s.id = d.subscription_id WHERE d.id = $1", [one], as: String.self)
        let expected = subscriptionOfOne == "orders" ? 599 : 600
        #expect(try scoped.jsonObject()["replayed"] as? Int == expected)
        #expect(try database.scalar("""
            SELECT count(*) FROM outbox.deliveries d JOIN outbox.subscriptions s ON s.id = d.subscription_id
            WHERE s.name = 'orders' AND d.status = 'dead'
            """, as: Int.self) == 0)
        let rest = try await CLI.run(["replay", "--dead"], database: database)
        #expect(rest.status == 0, "\(rest)")
        #expect(rest.tableRows == [[String(1199 - expected)]])
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'pending'", as: Int.self) == 1200)
    }

    @Test func statusShowsBacklogLagAndHealth() async throws {
        let database = try Self.database()
        let sql = try database.connect()
        try sql.query("SELECT outbox.publish('order.created', '{}') FROM generate_series(1, 3)")
        try sql.query("SELECT outbox.publish('user.signed_up', '{}', event_id => 'dead-one')")
        try Self.makeDead(sql, eventID: "dead-one")
        try sql.query("UPDATE outbox.delivery_queue SET created_at = now() - interval '10 minutes', next_attempt_at = now() - interval '2 minutes' WHERE status = 'pending'")
        try sql.query("UPDATE outbox.subscriptions SET enabled = false, disabled_reason = 'paused' WHERE name = 'all'")

        let table = try await CLI.run(["status"], database: database)
        #expect(table.status == 0, "\(table)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "BACKLOG")
        #expect(lines.contains("SUBSCRIPTIONS"))
        #expect(lines[2].hasPrefix("6  "), "6 pending: \(lines[2])")
        #expect(lines[2].contains("10m") && lines[2].contains("2m"), "ages for people: \(lines[2])")
        #expect(lines.contains { $0.hasPrefix("all ") && $0.contains(" no ") })
        #expect(lines.contains { $0.hasPrefix("orders ") && $0.contains(" yes ") && $0.contains("closed") })

        // No URL: libpq's PG… variables name the server and the database; OUTBOX_JSON asks for JSON.
        let json = try await CLI.run(
            ["status"], database: database,
            environment: ["OUTBOX_DATABASE_URL": "", "PGDATABASE": database.name, "OUTBOX_JSON": "true"]).jsonObject()
        let backlog = try #require(json["backlog"] as? [String: Any])
        #expect(backlog["pending"] as? Int == 6)
        #expect(backlog["due"] as? Int == 6)
        #expect(backlog["delivering"] as? Int == 0)
        #expect(backlog["dead"] as? Int == 1)
        #expect((backlog["oldest_pending_age_seconds"] as? Double).map { $0 >= 600 && $0 < 660 } == true)
        #expect((backlog["due_lag_seconds"] as? Double).map { $0 >= 120 && $0 < 180 } == true)
        let subscriptions = try #require(json["subscriptions"] as? [[String: Any]])
        #expect(subscriptions.map { $0["subscription"] as? String } == ["all", "orders"])
        #expect(subscriptions[0]["enabled"] as? Bool == false)
        #expect(subscriptions[0]["disabled_reason"] as? String == "paused")
        #expect(subscriptions[0]["pending"] as? Int == 3)
        #expect(subscriptions[0]["dead"] as? Int == 1)
        #expect(subscriptions[1]["pending"] as? Int == 3)
        #expect(subscriptions[1]["circuit_state"] as? String == "closed")
        #expect(subscriptions[1]["consecutive_failures"] as? Int == 0)
    }
}
