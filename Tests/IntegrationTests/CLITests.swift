import Foundation
import OutboxSQL
import Testing
import TestSupport

/// `outbox-relay subscription …` against a real database: what each command
/// prints (tables and --json), what it stores, and that a secret is printed once,
/// by add and rotate-secret, and never again.
@Suite(.timeLimit(.minutes(2)))
struct CLITests {
    @Test func addPrintsTheGeneratedSecretOnceAndStoresEverySetting() async throws {
        let database = try TestDatabase()
        let added = try await CLI.run([
            "subscription", "add", "orders", "--url", "https://example.com/hooks", "--events", "order.*, payment.created",
            "--ordered", "--header", "x-tenant=acme", "--header", "authorization=Bearer abc123", "--timeout", "5s",
            "--retry-schedule", "5s,1m", "--max-in-flight", "3", "--rate-limit", "2.5",
        ], database: database)
        #expect(added.status == 0, "\(added)")
        #expect(added.stderr.isEmpty, "a public URL gets no warning")
        let stored = try database.scalar("SELECT secret FROM outbox.subscriptions WHERE name = 'orders'", as: String.self)
        #expect(stored.hasPrefix("whsec_"))
        #expect(added.stdout.split(separator: "\n").filter { $0.contains("whsec_") } == [Substring(stored)])

        let row = try database.connect().query("""
            SELECT url, event_types::text, ordered, enabled, headers::text, timeout::text, retry_schedule::text,
                   max_in_flight, rate_limit::text
            FROM outbox.subscriptions WHERE name = 'orders'
            """)[0]
        #expect(try row.decode(String.self, at: 0) == "https://example.com/hooks")
        #expect(try row.decode(String.self, at: 1) == "{order.*,payment.created}")
        #expect(try row.decode(Bool.self, at: 2))
        #expect(try row.decode(Bool.self, at: 3))
        #expect(try row.decode(String.self, at: 4) == #"{"x-tenant": "acme", "authorization": "Bearer abc123"}"#)
        #expect(try row.decode(String.self, at: 5) == "00:00:05")
        #expect(try row.decode(String.self, at: 6) == "{00:00:05,00:01:00}")
        #expect(try row.decode(Int.self, at: 7) == 3)
        #expect(try row.decode(String.self, at: 8) == "2.5")

        // A secret from OUTBOX_SECRET (out of the process list), JSON output for scripts.
        let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let second = try await CLI.run(
            ["subscription", "add", "billing", "--url", "https://example.com/billing", "--events", "*", "--json"],
            database: database, environment: ["OUTBOX_SECRET": given])
        #expect(second.status == 0, "\(second)")
        let json = try second.jsonObject()
        #expect(json["name"] as? String == "billing")
        #expect(json["secret"] as? String == given)
        #expect(try database.scalar("SELECT secret FROM outbox.subscriptions WHERE name = 'billing'", as: String.self) == given)
        #expect(try database.scalar("SELECT timeout IS NULL AND retry_schedule IS NULL AND headers = '{}' FROM outbox.subscriptions WHERE name = 'billing'", as: Bool.self))

        // Never again: not in list or show, as tables or as JSON.
        for arguments in [["subscription", "list"], ["subscription", "list", "--json"],
                          ["subscription", "show", "orders"], ["subscription", "show", "orders", "--json"],
                          ["subscription", "show", "billing", "--json"], ["status", "--json"]] {
            let run = try await CLI.run(arguments, database: database)
            #expect(run.status == 0, "\(run)")
            #expect(!run.stdout.contains(stored) && !run.stdout.contains(given), "\(arguments) printed a secret")
            #expect(!run.stdout.contains("abc123"), "\(arguments) printed a credential header")
        }
    }

    @Test func listAndShowPrintSettingsAndHealth() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('orders', 'https://user:pw@example.com/hooks', '{order.*}')")
        try sql.query("SELECT outbox.subscribe('audit', 'https://audit.example.com/in', '{*}', ordered => true)")
        try sql.query("UPDATE outbox.subscriptions SET timeout = '7 seconds', max_in_flight = 4, headers = '{\"x-team\": \"red\"}' WHERE name = 'orders'")
        try sql.query("SELECT outbox.publish('order.created', '{}')")

        let table = try await CLI.run(["subscription", "list"], database: database)
        #expect(table.status == 0, "\(table)")
        #expect(table.stdout.hasPrefix("NAME"))
        #expect(table.tableRows.map { Array($0.prefix(3)) } == [["audit", "yes", "yes"], ["orders", "yes", "no"]])
        #expect(table.stdout.contains("https://[redacted]@example.com/hooks"), "URL credentials are never shown")
        #expect(!table.stdout.contains("pw@"))

        let list = try await CLI.run(["subscription", "list", "--json"], database: database).jsonArray()
        #expect(list.map { $0["name"] as? String } == ["audit", "orders"])
        let orders = try #require(list.last)
        #expect(orders["event_types"] as? [String] == ["order.*"])
        #expect(orders["timeout"] as? String == "7s")
        #expect(orders["max_in_flight"] as? Int == 4)
        #expect(orders["retry_schedule"] is NSNull, "unset settings are null: the global default")
        #expect(orders["headers"] as? [String: String] == ["x-team": "red"])
        #expect(orders["secret"] as? String == "whsec_…")

        let show = try await CLI.run(["subscription", "show", "orders"], database: database)
        #expect(show.status == 0, "\(show)")
        #expect(show.fields["timeout"] == "7s")
        #expect(show.fields["retry_schedule"] == "default")
        #expect(show.fields["pending"] == "1")
        #expect(show.fields["secret"] == "whsec_…")
        let shown = try await CLI.run(["subscription", "show", "orders", "--json"], database: database).jsonObject()
        #expect(shown["pending"] as? Int == 1)
        #expect(shown["dead"] as? Int == 0)
        #expect(shown["circuit_state"] as? String == "closed")
        #expect((shown["oldest_pending_age_seconds"] as? Double).map { $0 >= 0 } == true)
        #expect(shown["secret"] as? String == "whsec_…")

        let empty = try TestDatabase()
        let none = try await CLI.run(["subscription", "list", "--json"], database: empty)
        #expect(try none.jsonArray().isEmpty)
    }

    @Test func addWarnsAboutLiteralPrivateAddressesUnlessAllowed() async throws {
        let database = try TestDatabase()
        let loopback = try await CLI.run(
            ["subscription", "add", "local", "--url", "http://127.0.0.1:8080/hook", "--events", "*"], database: database)
        #expect(loopback.status == 0, "a warning, not a failure: \(loopback)")
        #expect(loopback.errorLines.count == 1)
        #expect(loopback.stderr.contains("127.0.0.1 (loopback)") && loopback.stderr.contains("OUTBOX_ALLOW_PRIVATE_NETWORKS=true"))
        let privateV6 = try await CLI.run(
            ["subscription", "add", "v6", "--url", "http://[fd00::1]/hook", "--events", "*", "--json"], database: database)
        #expect(privateV6.status == 0)
        #expect(privateV6.stderr.contains("unique-local"))
        #expect(try privateV6.jsonObject()["name"] as? String == "v6", "the warning stays out of the JSON")
        let allowed = try await CLI.run(
            ["subscription", "add", "allowed", "--url", "http://10.0.0.7/hook", "--events", "*"], database: database,
            environment: ["OUTBOX_ALLOW_PRIVATE_NETWORKS": "true"])
        #expect(allowed.status == 0 && allowed.stderr.isEmpty, "\(allowed)")
        let moved = try await CLI.run(["subscription", "update", "allowed", "--url", "http://192.168.1.2/"], database: database)
        #expect(moved.status == 0 && moved.stderr.contains("private network"), "\(moved)")
        #expect(try database.scalar("SELECT count(*) FROM outbox.subscriptions", as: Int.self) == 3)
    }

    @Test func updateChangesOnlyWhatIsGiven() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('orders', 'https://example.com/hooks', '{order.*}', ordered => true)")
        try sql.query("""
            UPDATE outbox.subscriptions
            SET retry_schedule = '{5s,1m}', rate_limit = 3, headers = '{"X-Tenant": "acme", "x-keep": "1"}'
            WHERE name = 'orders'
            """)
        let secret = try database.scalar("SELECT secret FROM outbox.subscriptions", as: String.self)
        let updated = try await CLI.run([
            "subscription", "update", "orders", "--url", "https://example.org/v2", "--events", "order.created,refund.*",
            "--ordered", "false", "--timeout", "750ms", "--header", "x-tenant=beta", "--clear-setting", "rate-limit", "--json",
        ], database: database)
        #expect(updated.status == 0, "\(updated)")
        let json = try updated.jsonObject()
        #expect(json["url"] as? String == "https://example.org/v2")
        #expect(json["event_types"] as? [String] == ["order.created", "refund.*"])
        #expect(json["ordered"] as? Bool == false)
        #expect(json["timeout"] as? String == "750ms")
        #expect(json["retry_schedule"] as? [String] == ["5s", "1m"], "not given, so kept")
        #expect(json["rate_limit"] is NSNull)
        #expect(json["headers"] as? [String: String] == ["x-tenant": "beta", "x-keep": "1"], "one header replaced, whatever its case")
        let row = try sql.query("SELECT timeout::text, rate_limit IS NULL, secret, enabled FROM outbox.subscriptions")[0]
        #expect(try row.decode(String.self, at: 0) == "00:00:00.75")
        #expect(try row.decode(Bool.self, at: 1))
        #expect(try row.decode(String.self, at: 2) == secret)
        #expect(try row.decode(Bool.self, at: 3))

        let table = try await CLI.run(
            ["subscription", "update", "orders", "--remove-header", "X-KEEP", "--max-in-flight", "9",
             "--clear-setting", "retry-schedule"], database: database)
        #expect(table.status == 0, "\(table)")
        #expect(table.fields["max_in_flight"] == "9")
        #expect(table.fields["retry_schedule"] == "default")
        #expect(table.fields["headers"] == "x-tenant=beta")
        #expect(try database.scalar("SELECT headers::text FROM outbox.subscriptions", as: String.self) == #"{"x-tenant": "beta"}"#)
    }

    @Test func disableAndEnableRecordTheReasonAndResumeDeliveries() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('orders', 'https://example.com/hooks', '{*}')")
        let disabled = try await CLI.run(["subscription", "disable", "orders", "--reason", "endpoint migration"], database: database)
        #expect(disabled.status == 0, "\(disabled)")
        #expect(disabled.tableRows == [["orders", "no", "endpoint migration"]])
        #expect(try database.scalar("SELECT disabled_reason FROM outbox.subscriptions WHERE NOT enabled", as: String.self) == "endpoint migration")
        try sql.query("SELECT outbox.publish('order.created', '{}')")
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 0, "a disabled subscription gets no new deliveries")

        // Disabled by the circuit breaker after days of failures: enabling starts that clock afresh.
        try sql.query("UPDATE outbox.subscription_state SET failing_since = now() - interval '6 days', consecutive_failures = 40")
        let enabled = try await CLI.run(["subscription", "enable", "orders", "--json"], database: database)
        #expect(enabled.status == 0, "\(enabled)")
        let json = try enabled.jsonObject()
        #expect(json["enabled"] as? Bool == true)
        #expect(json["disabled_reason"] is NSNull)
        #expect(try database.scalar("SELECT failing_since IS NULL FROM outbox.subscription_state", as: Bool.self))
        try sql.query("SELECT outbox.publish('order.created', '{}')")
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 1)
    }

    @Test func removeDeletesTheSubscriptionAndItsUnfinishedDeliveriesButNotTheHistory() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('gone', 'https://example.com/a', '{*}')")
        try sql.query("SELECT outbox.subscribe('kept', 'https://example.com/b', '{*}')")
        try sql.query("SELECT outbox.publish('order.created', '{}') FROM generate_series(1, 3)")
        try QueuedDeliveries.store(sql)
        try sql.query("""
            INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code)
            SELECT id, event_id, 1, now(), 12, 500 FROM outbox.delivery_queue
            """)
        let removed = try await CLI.run(["subscription", "remove", "gone", "--json"], database: database)
        #expect(removed.status == 0, "\(removed)")
        let json = try removed.jsonObject()
        #expect(json["name"] as? String == "gone")
        #expect(json["deliveries_removed"] as? Int == 3)
        #expect(try database.scalar("SELECT string_agg(name, ',') FROM outbox.subscriptions", as: String.self) == "kept")
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 3)
        #expect(try database.scalar("SELECT count(*) FROM outbox.subscription_state", as: Int.self) == 1)
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts", as: Int.self) == 6,
                "attempts are history: retention drops them with their partition")

        let table = try await CLI.run(["subscription", "remove", "kept"], database: database)
        #expect(table.tableRows == [["kept", "yes", "3"]], "\(table)")
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 0)
    }

    @Test func rotateSecretKeepsThePreviousOneSigningForTheGracePeriod() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        let first = try sql.query("SELECT outbox.subscribe('orders', 'https://example.com/hooks', '{*}')")[0].decode(String.self, at: 0)

        let rotated = try await CLI.run(["subscription", "rotate-secret", "orders", "--grace", "1h"], database: database)
        #expect(rotated.status == 0, "\(rotated)")
        let row = try sql.query("""
            SELECT secret, previous_secret, previous_secret_expires_at - now() BETWEEN interval '59 minutes' AND interval '61 minutes'
            FROM outbox.subscriptions
            """)[0]
        let second = try row.decode(String.self, at: 0)
        #expect(second != first && second.hasPrefix("whsec_"))
        #expect(try row.decode(String.self, at: 1) == first)
        #expect(try row.decode(Bool.self, at: 2))
        #expect(rotated.stdout.split(separator: "\n").filter { $0.contains("whsec_") } == [Substring(second)],
                "the new secret printed once, the old one not at all")

        let given = "whsec_K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
        let json = try await CLI.run(["subscription", "rotate-secret", "orders", "--secret", given, "--json"], database: database)
        #expect(json.status == 0, "\(json)")
        #expect(try json.jsonObject()["secret"] as? String == given)
        #expect(try sql.query("SELECT previous_secret = $1 AND secret = $2 FROM outbox.subscriptions", [second, given])[0].decode(Bool.self, at: 0))
        #expect(try database.scalar("SELECT previous_secret_expires_at - now() > interval '23 hours' FROM outbox.subscriptions", as: Bool.self),
                "the default grace is 24h")

        let show = try await CLI.run(["subscription", "show", "orders", "--json"], database: database)
        #expect(!show.stdout.contains(first) && !show.stdout.contains(second) && !show.stdout.contains(given))
        #expect(try show.jsonObject()["previous_secret"] as? String == "whsec_…")
    }
}
