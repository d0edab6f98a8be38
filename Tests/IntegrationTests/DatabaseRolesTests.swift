import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import OutboxSQL
import Testing
import TestSupport

/// The four group roles of `sql/0016_roles.sql`, statement by statement, with
/// login users in each: what each may do, and the 42501 for what it may not.
@Suite(.timeLimit(.minutes(3)))
struct DatabaseRolesTests {
    @Test func thePublisherPublishesAndDoesNothingElse() throws {
        let database = try TestDatabase()
        let owner = try database.connect()
        try ProcessTestSQL.subscribe(owner, name: "orders", url: "https://example.com/hooks")
        let publisher = try DatabaseLogin(database, roles: ["outbox_publisher"]).connect()

        try publisher.query("INSERT INTO outbox.events (event_type, payload) VALUES ('order.created', '{\"id\": 1}')")
        let eventID = try publisher.query("SELECT outbox.publish('order.paid', '{\"id\": 1}'::jsonb, ordering_key => 'o-1')")[0]
            .decode(String.self, at: 0)
        #expect(!eventID.isEmpty)
        let chosen = try publisher.query("SELECT outbox.publish('order.paid', '{}'::jsonb, event_id => 'chosen-1')")[0]
            .decode(String.self, at: 0)
        #expect(chosen == "chosen-1")
        // It runs as the caller (no SECURITY DEFINER on every host transaction):
        // the trigger that needs more runs as the owner.
        #expect(try database.scalar(
            "SELECT prosecdef FROM pg_proc WHERE oid = 'outbox.publish(text, jsonb, text, jsonb, text)'::regprocedure",
            as: Bool.self) == false)
        // The fan-out works for it: every event has its delivery to the subscription.
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'pending'", as: Int.self) == 3)
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE event_id = $1", [eventID], as: Int.self) == 1)

        publisher.expectDenied("SELECT secret FROM outbox.subscriptions")
        publisher.expectDenied("SELECT name FROM outbox.subscriptions")
        publisher.expectDenied("SELECT * FROM outbox.deliveries")
        publisher.expectDenied("SELECT * FROM outbox.delivery_queue")
        publisher.expectDenied("SELECT * FROM outbox.events")
        publisher.expectDenied("UPDATE outbox.subscriptions SET enabled = false")
        publisher.expectDenied("DELETE FROM outbox.subscriptions")
        publisher.expectDenied("SELECT outbox.subscribe('mine', 'https://example.com/mine', ARRAY['*'])")
        publisher.expectDenied("SELECT outbox.replay(1)")
        publisher.expectDenied("DELETE FROM outbox.events")
    }

    @Test func theReaderReadsEverySpecObjectButNoSecretOrCredential() throws {
        let database = try TestDatabase()
        let owner = try database.connect()
        try owner.query("""
            INSERT INTO outbox.subscriptions (name, url, event_types, secret, headers)
            VALUES ('orders', 'https://hook-user:hook-password@example.com/hooks', ARRAY['*'], outbox.generate_secret(),
                    '{"authorization": "Bearer header-token", "x-tenant": "acme"}')
            """)
        let deadID = try Self.deadLetter(owner, subscription: "orders")
        let reader = try DatabaseLogin(database, roles: ["outbox_reader"]).connect()

        #expect(try reader.query("SELECT count(*) FROM outbox.events")[0].decode(Int.self, at: 0) == 1)
        #expect(try reader.query("SELECT status FROM outbox.deliveries WHERE id = $1", [deadID])[0].decode(String.self, at: 0) == "dead")
        #expect(try reader.query("SELECT count(*) FROM outbox.attempts")[0].decode(Int.self, at: 0) == 0)
        let dead = try reader.query("SELECT delivery_id, url FROM outbox.dead_letters")
        #expect(try dead.rows.map { try $0.decode(Int64.self, at: 0) } == [deadID])
        #expect(try dead[0].decode(String.self, at: 1) == "https://[redacted]@example.com/hooks")
        let backlog = try reader.query("SELECT subscription, pending, dead FROM outbox.backlog")
        #expect(try backlog[0].decode(String.self, at: 0) == "orders")
        #expect(try backlog[0].decode(Int.self, at: 2) == 1)
        let health = try reader.query("SELECT subscription, dead FROM outbox.subscription_health")
        #expect(try health[0].decode(String.self, at: 0) == "orders")
        #expect(try health[0].decode(Int.self, at: 1) == 1)
        let redacted = try reader.query("SELECT url, headers::text, has_previous_secret FROM outbox.subscription_settings")
        #expect(try redacted[0].decode(String.self, at: 0) == "https://[redacted]@example.com/hooks")
        let headers = try redacted[0].decode(String.self, at: 1)
        #expect(headers.contains("acme") && headers.contains("[redacted]") && !headers.contains("header-token"))
        #expect(try reader.query("SELECT name, enabled, event_types FROM outbox.subscriptions")[0].decode(String.self, at: 0) == "orders")

        for column in ["secret", "previous_secret", "url", "headers", "*"] {
            reader.expectDenied("SELECT \(column) FROM outbox.subscriptions")
        }
        reader.expectDenied("SELECT name FROM outbox.api_tokens")
        reader.expectDenied("INSERT INTO outbox.events (event_type, payload) VALUES ('order.created', '{}')")
        reader.expectDenied("UPDATE outbox.subscriptions SET enabled = false")
        reader.expectDenied("SELECT outbox.replay($1)", [deadID])
        reader.expectDenied("SELECT outbox.create_history_partitions('outbox.events', '1 day', '3 days')")
    }

    @Test func theOperatorManagesWithTheCLIButReadsNoSecretBack() async throws {
        let database = try TestDatabase()
        let login = try DatabaseLogin(database, roles: ["outbox_operator"])
        func cli(_ arguments: String...) async throws -> CLIResult {
            let result = try await CLI.run(arguments, database: database, environment: login.environment)
            #expect(result.status == 0, "\(arguments.joined(separator: " ")): \(result)")
            return result
        }

        let added = try await cli("subscription", "add", "orders", "--url", "https://hook-user:hook-password@example.com/hooks",
                                  "--events", "order.*", "--header", "authorization=Bearer header-token", "--json")
        let secret = try #require(try added.jsonObject()["secret"] as? String)
        #expect(secret.hasPrefix("whsec_"))
        let updated = try await cli("subscription", "update", "orders", "--url", "https://new-user:new-password@example.org/hooks",
                                    "--header", "x-api-key=new-key", "--header", "x-tenant=acme",
                                    "--remove-header", "authorization", "--max-in-flight", "5", "--json")
        let record = try updated.jsonObject()
        #expect(record["url"] as? String == "https://[redacted]@example.org/hooks")
        #expect(record["headers"] as? [String: String] == ["x-api-key": "[redacted]", "x-tenant": "acme"])
        #expect(record["max_in_flight"] as? Int == 5)
        let rotated = try await cli("subscription", "rotate-secret", "orders", "--json")
        let newSecret = try #require(try rotated.jsonObject()["secret"] as? String)
        #expect(newSecret.hasPrefix("whsec_") && newSecret != secret)
        _ = try await cli("subscription", "disable", "orders")
        _ = try await cli("subscription", "enable", "orders")

        // What the owner stored is what the operator wrote.
        let owner = try database.connect()
        let stored = try owner.query("SELECT url, headers ->> 'x-api-key', secret, previous_secret FROM outbox.subscriptions")[0]
        #expect(try stored.decode(String.self, at: 0) == "https://new-user:new-password@example.org/hooks")
        #expect(try stored.decode(String.self, at: 1) == "new-key")
        #expect(try stored.decode(String.self, at: 2) == newSecret)
        #expect(try stored.decode(String.self, at: 3) == secret)
        _ = try await cli("subscription", "update", "orders", "--clear-setting", "headers")
        #expect(try database.scalar("SELECT headers::text FROM outbox.subscriptions", as: String.self) == "{}")

        let dead = try Self.deadLetter(owner, subscription: "orders")
        let replayed = try await cli("replay", "--delivery", String(dead), "--json")
        #expect(try replayed.jsonObject()["status"] as? String == "pending")
        try owner.query("UPDATE outbox.delivery_queue SET status = 'dead', completed_at = now() - interval '1 hour' WHERE id = $1", [dead])
        #expect(try await cli("replay", "--dead", "--json").jsonObject()["replayed"] as? Int == 1)
        try owner.query("UPDATE outbox.delivery_queue SET status = 'dead', completed_at = now() - interval '1 hour' WHERE id = $1", [dead])
        #expect(try await cli("deliveries", "purge", "--dead", "--older-than", "0s", "--json").jsonObject()["purged"] as? Int == 1)

        let token = try await cli("token", "create", "dashboard", "--scope", "read", "--json")
        #expect((try token.jsonObject()["token"] as? String)?.isEmpty == false)
        _ = try await cli("token", "revoke", "dashboard")

        var shown: [CLIResult] = [updated]
        for command in [["subscription", "show", "orders"], ["subscription", "list"], ["token", "list"], ["status"], ["deliveries"]] {
            shown.append(try await CLI.run(command, database: database, environment: login.environment))
        }
        for output in shown {
            #expect(output.status == 0, "\(output)")
            for hidden in ["password", "header-token", "new-key", secret, newSecret] {
                #expect(!output.stdout.contains(hidden), "\(output)")
            }
        }

        let sql = try login.connect()
        for column in ["secret", "previous_secret", "url", "headers", "*"] {
            sql.expectDenied("SELECT \(column) FROM outbox.subscriptions")
        }
        sql.expectDenied("UPDATE outbox.subscriptions SET enabled = true RETURNING secret")
        sql.expectDenied("UPDATE outbox.subscriptions SET previous_secret = secret")
        sql.expectDenied("SELECT token_hash FROM outbox.api_tokens")
        sql.expectDenied("SELECT outbox.create_history_partitions('outbox.events', '1 day', '3 days')")

        _ = try await cli("subscription", "remove", "orders")
        #expect(try database.scalar("SELECT count(*) FROM outbox.subscriptions", as: Int.self) == 0)
    }

    @Test func theRelayRoleDeliversEndToEndWithRun() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let owner = try database.connect()
        let path = "/ok/roles"
        try ProcessTestSQL.subscribe(owner, name: "roles", url: receiver.url(path))
        // 410 Gone disables the subscription: the relay changes that much of it.
        try ProcessTestSQL.subscribe(owner, name: "gone", url: receiver.url("/status/410"))
        let relayLogin = try DatabaseLogin(database, roles: ["outbox_relay"])
        let publisher = try DatabaseLogin(database, roles: ["outbox_publisher"]).connect()
        let reader = try DatabaseLogin(database, roles: ["outbox_reader"]).connect()

        // One-minute partitions: the relay's partition keeper creates some at once.
        let relay = try RelayProcess(database: database, environment: relayLogin.environment.merging(
            ["OUTBOX_PARTITION_INTERVAL": "1m"]) { $1 })
        var expected: Set<String> = []
        for number in 1...20 {
            expected.insert(try publisher.query("SELECT outbox.publish('order.created', $1::jsonb)", [#"{"n": \#(number)}"#])[0]
                .decode(String.self, at: 0))
        }
        _ = try await waitForDeliveries(of: expected, at: path, on: receiver, relays: [relay], timeout: .seconds(60))
        let succeeded = try await ProcessTestSQL.waitForDeliveries(
            reader, where: "status = 'succeeded'", count: expected.count, timeout: .seconds(20))
        #expect(succeeded == expected.count, "\(relay.logTail())")
        for _ in 0..<100 where try reader.query("SELECT enabled FROM outbox.subscriptions WHERE name = 'gone'")[0].decode(Bool.self, at: 0) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try !reader.query("SELECT enabled FROM outbox.subscriptions WHERE name = 'gone'")[0].decode(Bool.self, at: 0),
                "\(relay.logTail())")

        // The partitions it made belong to the schema's owner, like their parents.
        let partitions = try owner.query("""
            SELECT count(*), bool_and(c.relowner = n.nspowner)
            FROM outbox.time_partitions('outbox.events') AS p
            JOIN pg_class AS c ON c.oid = p.partition
            JOIN pg_namespace AS n ON n.oid = c.relnamespace
            """)[0]
        #expect(try partitions.decode(Int.self, at: 0) >= 3, "\(relay.logTail())")
        #expect(try partitions.decode(Bool?.self, at: 1) == true)
        #expect(!relay.log.contains("permission denied"), "\(relay.logTail())")
        #expect(try await relay.terminate(within: .seconds(20)) == .success, "\(relay.logTail())")
    }

    @Test func theAdminAPIRunsOnTheRelaysLoginWithTheOperatorAndPublisherRoles() async throws {
        let database = try TestDatabase()
        let login = try DatabaseLogin(database, roles: ["outbox_relay", "outbox_operator", "outbox_publisher"])
        let created = try await CLI.run(["token", "create", "ops", "--scope", "admin", "--json"], database: database,
                                        environment: login.environment)
        let token = try #require(try created.jsonObject()["token"] as? String, "\(created)")
        let relay = try RelayProcess(database: database, environment: login.environment.merging(
            ["OUTBOX_API_LISTEN": "127.0.0.1:0"]) { $1 })
        let port = try await relay.apiPort()
        func call(_ method: String, _ path: String, _ body: String? = nil) async throws -> (Int, String) {
            var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
            request.httpMethod = method
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
            if let body {
                request.httpBody = Data(body.utf8)
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            }
            let (data, response) = try await URLSession(configuration: .ephemeral).data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
        }

        let (added, addedBody) = try await call(
            "POST", "/api/v1/subscriptions", #"{"name": "api", "url": "https://example.com/h", "event_types": ["order.*"]}"#)
        #expect(added == 201 && addedBody.contains("whsec_"), "\(added) \(addedBody)")
        let (rotated, rotatedBody) = try await call("POST", "/api/v1/subscriptions/api/rotate-secret")
        #expect(rotated == 200, "\(rotatedBody)")
        let (published, publishedBody) = try await call("POST", "/api/v1/events", #"{"event_type": "order.created", "payload": {"id": 1}}"#)
        #expect(published == 202, "\(publishedBody)")
        for path in ["/api/v1/subscriptions", "/api/v1/deliveries", "/api/v1/stats"] {
            let (status, body) = try await call("GET", path)
            #expect(status == 200, "\(path): \(body)")
        }
        let (removed, removedBody) = try await call("DELETE", "/api/v1/subscriptions/api")
        #expect(removed == 204, "\(removedBody)")
        #expect(!relay.log.contains("permission denied"), "\(relay.logTail())")
        #expect(try await relay.terminate(within: .seconds(20)) == .success, "\(relay.logTail())")
    }

    @Test func rolesTwiceChangesNothing() async throws {
        let database = try TestDatabase()
        let first = try await CLI.run(["roles", "--json"], database: database)
        #expect(first.status == 0, "\(first)")
        let granted = try Self.privileges(database)
        #expect(granted.contains { $0.hasPrefix("events:") && $0.contains("outbox_publisher=a/") }, "\(granted)")

        let second = try await CLI.run(["roles", "--json"], database: database)
        #expect(second.status == 0, "\(second)")
        #expect(try Self.privileges(database) == granted)
        let rows = try second.jsonArray()
        #expect(rows.map { $0["role"] as? String } == ["outbox_publisher", "outbox_reader", "outbox_operator", "outbox_relay"])
        #expect(rows.allSatisfy { $0["created"] as? Bool == false && $0["granted"] as? Bool == true }, "\(second)")

        let table = try await CLI.run(["roles"], database: database)
        #expect(table.tableRows.map(\.first) == ["outbox_publisher", "outbox_reader", "outbox_operator", "outbox_relay"], "\(table)")
    }

    @Test func rolesRunByANonOwnerSaysWhatIsMissing() async throws {
        let database = try TestDatabase()
        let stranger = try DatabaseLogin(database, roles: [])
        let result = try await CLI.run(["roles"], database: database, environment: stranger.environment)
        #expect(result.status != 0)
        #expect(result.errorLines.count == 1, "\(result)")
        #expect(result.stderr.contains("needs the owner of schema outbox") && result.stderr.contains(stranger.user), "\(result)")
    }

    @Test func migrateKeepsTheGrantsInPlace() async throws {
        let database = try TestDatabase(migrated: false)
        // The roles exist (made by a DBA, or by another test: they are cluster-wide).
        try DatabaseLogin.grantGroupRoles(in: TestDatabase())

        let first = try await CLI.run(["migrate"], database: database)
        #expect(first.status == 0, "\(first)")
        let granted = try Self.privileges(database)
        try Self.expectTheRolesGranted(database)

        let again = try await CLI.run(["migrate"], database: database)
        #expect(again.status == 0, "\(again)")
        #expect(try Self.privileges(database) == granted)
        try Self.expectTheRolesGranted(database)
    }

    /// A few privileges of each role, as `has_…_privilege` sees them.
    static func expectTheRolesGranted(_ database: TestDatabase, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let checks: [(String, Bool)] = [
            ("has_table_privilege('outbox_publisher', 'outbox.events', 'INSERT')", true),
            ("has_function_privilege('outbox_publisher', 'outbox.publish(text, jsonb, text, jsonb, text)', 'EXECUTE')", true),
            ("has_table_privilege('outbox_publisher', 'outbox.events', 'SELECT')", false),
            ("has_table_privilege('outbox_reader', 'outbox.deliveries', 'SELECT')", true),
            ("has_table_privilege('outbox_reader', 'outbox.subscription_settings', 'SELECT')", true),
            ("has_table_privilege('outbox_reader', 'outbox.backlog', 'SELECT')", true),
            ("has_table_privilege('outbox_publisher', 'outbox.subscription_settings', 'SELECT')", false),
            ("has_column_privilege('outbox_reader', 'outbox.subscriptions', 'name', 'SELECT')", true),
            ("has_column_privilege('outbox_reader', 'outbox.subscriptions', 'secret', 'SELECT')", false),
            ("has_column_privilege('outbox_operator', 'outbox.subscriptions', 'url', 'SELECT')", false),
            ("has_table_privilege('outbox_operator', 'outbox.subscriptions', 'UPDATE')", true),
            ("has_function_privilege('outbox_operator', 'outbox.rotate_secret(text, text, interval)', 'EXECUTE')", true),
            ("has_column_privilege('outbox_relay', 'outbox.subscriptions', 'secret', 'SELECT')", true),
            ("has_table_privilege('outbox_relay', 'outbox.attempts', 'INSERT')", true),
            ("has_function_privilege('outbox_relay', 'outbox.create_history_partitions(regclass, interval, interval)', 'EXECUTE')", true),
            ("has_schema_privilege('outbox_relay', 'outbox', 'CREATE')", false),
            ("has_function_privilege('public', 'outbox.rotate_secret(text, text, interval)', 'EXECUTE')", false),
        ]
        let connection = try database.connect()
        for (check, expected) in checks {
            #expect(try connection.query("SELECT \(check)")[0].decode(Bool.self, at: 0) == expected, "\(check)", sourceLocation: sourceLocation)
        }
    }

    /// Every access privilege in schema outbox (relations, columns, functions, the
    /// schema itself), one sorted line each.
    static func privileges(_ database: TestDatabase) throws -> [String] {
        try database.connect().query("""
            SELECT entry
            FROM (SELECT c.relname || ':' || coalesce(c.relacl::text, '') AS entry
                  FROM pg_class AS c
                  WHERE c.relnamespace = 'outbox'::regnamespace
                  UNION ALL
                  SELECT c.relname || '.' || a.attname || ':' || a.attacl::text
                  FROM pg_attribute AS a
                  JOIN pg_class AS c ON c.oid = a.attrelid
                  WHERE c.relnamespace = 'outbox'::regnamespace AND a.attacl IS NOT NULL
                  UNION ALL
                  SELECT p.oid::regprocedure::text || ':' || coalesce(p.proacl::text, '')
                  FROM pg_proc AS p
                  WHERE p.pronamespace = 'outbox'::regnamespace
                  UNION ALL
                  SELECT 'schema:' || coalesce(n.nspacl::text, '')
                  FROM pg_namespace AS n
                  WHERE n.nspname = 'outbox') AS privileges
            ORDER BY entry
            """).rows.map { try $0.decode(String.self, at: 0) }
    }

    /// A dead letter of `subscription` for a new event, as a relay leaves one;
    /// returns its delivery id.
    static func deadLetter(_ owner: Connection, subscription: String) throws -> Int64 {
        let eventID = try owner.query("SELECT outbox.publish('order.created', '{\"id\": 7}'::jsonb)")[0].decode(String.self, at: 0)
        return try owner.query("""
            INSERT INTO outbox.delivery_queue (event_id, event_seq, event_created_at, subscription_id, status, attempts,
                                               last_status_code, created_at, completed_at)
            SELECT e.event_id, e.id, e.created_at, s.id, 'dead', 3, 500, e.created_at, now() - interval '1 hour'
            FROM outbox.events AS e, outbox.subscriptions AS s
            WHERE e.event_id = $1 AND s.name = $2
            RETURNING id
            """, [eventID, subscription])[0].decode(Int64.self, at: 0)
    }
}
