import OutboxSQL
import TestSupport
import Testing

/// The bad-input catalogue of SPEC §3: PostgreSQL refuses each case at INSERT time
/// with its SQLSTATE and a message naming the problem, and keeps nothing of it.
@Suite struct BadInputTests {
    /// One piece of bad input and how it must be refused.
    struct Case: Sendable, CustomTestStringConvertible {
        let testDescription: String
        var setup: String?
        let sql: String
        let parameters: [any PostgresEncodable]
        let sqlState: String
        let mentions: [String]
    }

    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let oneMiB = 1 << 20

    /// A JSON string whose JSON text is exactly `bytes` long.
    static func jsonString(bytes: Int) -> PostgresJSON {
        PostgresJSON(text: "\"" + String(repeating: "a", count: bytes - 2) + "\"")
    }

    static func insertEvent(
        _ what: String, type: String = "order.created", payload: any PostgresEncodable = PostgresJSON(text: "{}"),
        orderingKey: String? = nil, headers: String? = nil, sqlState: String = "23514", mentions: String...
    ) -> Case {
        Case(testDescription: "INSERT: \(what)",
             sql: "INSERT INTO outbox.events (event_type, payload, ordering_key, headers) VALUES ($1, $2::jsonb, $3, $4::jsonb)",
             parameters: [type, payload, orderingKey, headers], sqlState: sqlState, mentions: mentions)
    }

    static func publishEvent(
        _ what: String, type: String = "order.created", payload: PostgresJSON = PostgresJSON(text: "{}"),
        orderingKey: String? = nil, headers: String? = nil, mentions: String...
    ) -> Case {
        Case(testDescription: "outbox.publish: \(what)",
             sql: "SELECT outbox.publish($1, $2::jsonb, ordering_key => $3, headers => $4::jsonb)",
             parameters: [type, payload, orderingKey, headers], sqlState: "23514", mentions: mentions)
    }

    static let eventCases: [Case] = [
        insertEvent("payload is not valid JSON", payload: #"{"a":"#, sqlState: "22P02", mentions: "invalid input syntax for type json"),
        insertEvent("payload one byte over 1 MiB", payload: jsonString(bytes: oneMiB + 1),
                    mentions: "payload is 1048577 bytes, over the limit of 1048576 bytes"),
        publishEvent("payload one byte over 1 MiB", payload: jsonString(bytes: oneMiB + 1), mentions: "over the limit"),
        insertEvent("empty event_type", type: "", mentions: "event_type is empty"),
        publishEvent("empty event_type", type: "", mentions: "event_type is empty"),
        insertEvent("event_type with a space", type: "order created", mentions: #""order created" is malformed"#),
        insertEvent("event_type with a leading dot", type: ".order", mentions: #"".order" is malformed"#),
        // An empty segment (issue 14): `order.` was accepted before sql/0015_operations.sql.
        insertEvent("event_type with a trailing dot", type: "order.", mentions: #""order." has an empty segment"#),
        insertEvent("event_type with two dots in a row", type: "order..paid", mentions: #""order..paid" has an empty segment"#),
        publishEvent("event_type with a trailing dot", type: "order.", mentions: "has an empty segment"),
        insertEvent("event_type of 256 characters", type: String(repeating: "e", count: 256), mentions: "is malformed", "at most 255"),
        insertEvent("event_type with a trailing newline", type: "order.created\n", mentions: "is malformed"),
        insertEvent("headers is a JSON array", headers: #"["traceparent"]"#, mentions: "must be a JSON object", "got a JSON array"),
        insertEvent("headers is a JSON string", headers: #""traceparent""#, mentions: "must be a JSON object", "got a JSON string"),
        publishEvent("headers is a JSON array", headers: "[]", mentions: "must be a JSON object"),
        insertEvent("a header value is a number", headers: #"{"x-count": 5}"#, mentions: #"header "x-count" must be a string, got a JSON number"#),
        insertEvent("a header value is an object", headers: #"{"x-meta": {}}"#, mentions: #"header "x-meta" must be a string"#),
        insertEvent("a header value holds a line break", headers: #"{"x-a": "1\r\nx-b: 2"}"#, mentions: "control character"),
        insertEvent("an invalid header name", headers: #"{"x a": "1"}"#, mentions: "invalid header name"),
        insertEvent("ordering_key of 256 characters", orderingKey: String(repeating: "k", count: 256),
                    mentions: "ordering_key must be 1 to 255 characters, got 256"),
        publishEvent("ordering_key of 256 characters", orderingKey: String(repeating: "k", count: 256), mentions: "ordering_key"),
    ] + ["content-type", "Content-Length", "host", "user-agent", "webhook-id", "Webhook-Signature"].map { name in
        insertEvent("headers set the relay's \(name)", headers: #"{"\#(name)": "x"}"#, mentions: #"may not set header "\#(name)""#)
    }

    static func insertSubscription(_ what: String, url: String = "https://example.com/hooks", types: [String?] = ["order.created"],
                                   mentions: String...) -> Case {
        Case(testDescription: "INSERT: \(what)",
             sql: "INSERT INTO outbox.subscriptions (name, url, event_types, secret) VALUES ('orders', $1, $2::text[], $3)",
             parameters: [url, types, secret], sqlState: "23514", mentions: mentions)
    }

    static func subscribe(_ what: String, url: String = "https://example.com/hooks", types: [String?] = ["order.created"],
                          mentions: String...) -> Case {
        Case(testDescription: "outbox.subscribe: \(what)", sql: "SELECT outbox.subscribe('orders', $1, $2::text[])",
             parameters: [url, types], sqlState: "23514", mentions: mentions)
    }

    static let subscriptionCases: [Case] = {
        let urlProblem = "url must be an http:// or https:// URL with a host"
        var cases: [Case] = []
        for url in ["ftp://x", "javascript:alert(1)", "http:///path", "http://", "example.com/hooks", "https://exa mple.com/"] {
            cases.append(insertSubscription("url \(url)", url: url, mentions: urlProblem))
            cases.append(subscribe("url \(url)", url: url, mentions: urlProblem))
        }
        cases.append(insertSubscription("empty event_types", types: [], mentions: "event_types is empty"))
        cases.append(subscribe("empty event_types", types: [], mentions: "event_types is empty"))
        for pattern in ["order.*.x", "**", "order created", "", "order*", "*.created",
                        "order.", ".order", "order..paid", "order..*", ".*"] {
            let named = #"pattern "\#(pattern)" is malformed"#
            cases.append(insertSubscription("pattern '\(pattern)'", types: ["order.created", pattern], mentions: named))
            cases.append(subscribe("pattern '\(pattern)'", types: [pattern], mentions: named))
        }
        cases.append(subscribe("a NULL pattern", types: [nil], mentions: #"pattern "NULL" is malformed"#))
        return cases
    }()

    static func setting(_ column: String, _ value: String, mentions: String) -> [Case] {
        let insert = Case(
            testDescription: "INSERT: \(column) = '\(value)'",
            sql: "INSERT INTO outbox.subscriptions (name, url, event_types, secret, \(column)) VALUES ('orders', 'https://example.com/hooks', '{*}', $1, $2)",
            parameters: [secret, value], sqlState: "22023", mentions: [mentions])
        let update = Case(
            testDescription: "UPDATE: \(column) = '\(value)'",
            setup: "SELECT outbox.subscribe('orders', 'https://example.com/hooks', '{*}')",
            sql: "UPDATE outbox.subscriptions SET \(column) = $1 WHERE name = 'orders'",
            parameters: [value], sqlState: "22023", mentions: [mentions])
        return [insert, update]
    }

    static let settingCases: [Case] = setting("timeout", "0 seconds", mentions: "timeout must be positive")
        + setting("timeout", "-1 second", mentions: "timeout must be positive")
        + setting("max_in_flight", "0", mentions: "max_in_flight must be positive, got 0")
        + setting("max_in_flight", "-5", mentions: "max_in_flight must be positive, got -5")
        + setting("retry_schedule", "{5 seconds,0 seconds}", mentions: "every retry_schedule interval must be positive")
        + setting("retry_schedule", "{-1 minute}", mentions: "every retry_schedule interval must be positive")
        + setting("rate_limit", "0", mentions: "rate_limit must be a positive, finite number")
        + setting("rate_limit", "-1.5", mentions: "rate_limit must be a positive, finite number")
        + setting("rate_limit", "NaN", mentions: "rate_limit must be a positive, finite number")
        + setting("rate_limit", "Infinity", mentions: "rate_limit must be a positive, finite number")

    @Test(arguments: eventCases + subscriptionCases + settingCases)
    func badInputIsRefused(_ bad: Case) throws {
        let database = try TestDatabase()
        let connection = try database.connect()
        // A subscription to everything, so that a leaked event would leave a delivery too.
        try connection.query("SELECT outbox.subscribe('everything', 'https://example.com/all', '{*}')")
        if let setup = bad.setup { try connection.execute(setup) }
        let before = try Self.rowCounts(database)

        let error = try #require(throws: PostgresError.self) { try connection.query(bad.sql, bad.parameters) }

        #expect(error.code == .server)
        #expect(error.sqlState == bad.sqlState, "\(error)")
        for fragment in bad.mentions {
            #expect(error.message.contains(fragment), "\(error)")
        }
        #expect(try Self.rowCounts(database) == before, "the refused statement left rows behind")
    }

    @Test func oversizedPayloadSaysWhatToDo() throws {
        let database = try TestDatabase()
        let error = try #require(throws: PostgresError.self) {
            try database.connect().query("SELECT outbox.publish('order.created', $1::jsonb)", [Self.jsonString(bytes: Self.oneMiB + 1)])
        }
        #expect(error.hint?.contains("outbox.max_payload_bytes") == true, "\(error)")
    }

    @Test func duplicateEventIDIsAUniqueViolation() throws {
        let database = try TestDatabase()
        let connection = try database.connect()
        try connection.query("SELECT outbox.publish('order.created', '{}', event_id => $1)", ["evt-1"])

        let viaInsert = try #require(throws: PostgresError.self) {
            try connection.query("INSERT INTO outbox.events (event_id, event_type, payload) VALUES ($1, 'order.created', '{}')", ["evt-1"])
        }
        let viaPublish = try #require(throws: PostgresError.self) {
            try connection.query("SELECT outbox.publish('order.paid', '{}', event_id => $1)", ["evt-1"])
        }
        for error in [viaInsert, viaPublish] {
            #expect(error.isUniqueViolation)
            #expect(error.message.contains("events_event_id_key"), "\(error)")
            #expect(error.detail == "Key (event_id)=(evt-1) already exists.")
        }
        #expect(try database.scalar("SELECT count(*) FROM outbox.events", as: Int.self) == 1)
    }

    @Test func duplicateSubscriptionNameIsAUniqueViolation() throws {
        let database = try TestDatabase()
        let connection = try database.connect()
        try connection.query("SELECT outbox.subscribe('orders', 'https://example.com/a', '{order.*}')")

        let viaSubscribe = try #require(throws: PostgresError.self) {
            try connection.query("SELECT outbox.subscribe('orders', 'https://example.com/b', '{*}')")
        }
        let viaInsert = try #require(throws: PostgresError.self) {
            try connection.query("INSERT INTO outbox.subscriptions (name, url, event_types, secret) VALUES ('orders', 'https://example.com/c', '{*}', $1)",
                                 [Self.secret])
        }
        for error in [viaSubscribe, viaInsert] {
            #expect(error.isUniqueViolation)
            #expect(error.message.contains("subscriptions_name_key"), "\(error)")
        }
        #expect(try database.scalar("SELECT url FROM outbox.subscriptions", as: String.self) == "https://example.com/a")
    }

    @Test func validInputAtTheLimitsIsAccepted() throws {
        let database = try TestDatabase()
        let connection = try database.connect()
        let urls = ["http://localhost:8080/hook", "https://user:pw@example.com/x?y=1#z", "http://[::1]:9000/", "HTTPS://Example.COM"]
        for (index, url) in urls.enumerated() {
            try connection.query("SELECT outbox.subscribe($1, $2, '{*}')", ["url-\(index)", url])
        }
        try connection.query(
            "INSERT INTO outbox.subscriptions (name, url, event_types, secret, timeout, max_in_flight, retry_schedule, rate_limit) VALUES ('tuned', 'https://example.com/t', '{*}', $1, '1 second', 1, '{1 second,5 minutes}', 0.5)",
            [Self.secret])
        try connection.query(
            "SELECT outbox.publish($1, $2::jsonb, ordering_key => $3, headers => $4::jsonb)",
            [String(repeating: "e", count: 255), Self.jsonString(bytes: Self.oneMiB), String(repeating: "k", count: 255),
             #"{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Tenant": "acme"}"#])
        #expect(try database.scalar("SELECT octet_length(payload::text) FROM outbox.events", as: Int.self) == Self.oneMiB)
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 5)
    }

    @Test func patternsAreAcceptedAndMatchAsDocumented() throws {
        let database = try TestDatabase()
        let connection = try database.connect()
        try connection.query("SELECT outbox.subscribe('exact', 'https://example.com/e', ARRAY['order.created'])")
        try connection.query("SELECT outbox.subscribe('prefix', 'https://example.com/p', ARRAY['order.*'])")
        try connection.query(
            "INSERT INTO outbox.subscriptions (name, url, event_types, secret) VALUES ('all', 'https://example.com/a', ARRAY['*'], $1)",
            [Self.secret])
        for type in ["order.created", "order.paid", "invoice.created"] {
            try connection.query("SELECT outbox.publish($1, '{}')", [type])
        }
        let matched = try connection.query("""
            SELECT e.event_type || ' -> ' || string_agg(s.name, ',' ORDER BY s.name)
            FROM outbox.deliveries AS d
            JOIN outbox.events AS e ON e.event_id = d.event_id
            JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
            GROUP BY e.event_type ORDER BY e.event_type
            """).rows.map { try $0.decode(String.self, at: 0) }
        #expect(matched == ["invoice.created -> all", "order.created -> all,exact,prefix", "order.paid -> all,prefix"])
    }

    @Test func aRefusedInsertSparesAnotherSessionsTransaction() throws {
        let database = try TestDatabase()
        let host = try database.connect()
        let other = try database.connect()
        try host.query("SELECT outbox.subscribe('everything', 'https://example.com/all', '{*}')")
        let insert = "INSERT INTO outbox.events (event_id, event_type, payload) VALUES ($1, $2, '{}')"

        try host.withTransaction { transaction in
            try transaction.query(insert, ["good-1", "order.created"])
            #expect(throws: PostgresError.self) { try other.query(insert, ["bad-1", "not valid!"]) }
            try transaction.query(insert, ["good-2", "order.paid"])
        }

        let events = try host.query("SELECT event_id FROM outbox.events ORDER BY id").rows.map { try $0.decode(String.self, at: 0) }
        #expect(events == ["good-1", "good-2"])
        let deliveries = try host.query("SELECT event_id FROM outbox.deliveries ORDER BY id").rows.map { try $0.decode(String.self, at: 0) }
        #expect(deliveries == ["good-1", "good-2"])
    }

    /// Rows in the tables a refused statement must not touch.
    static func rowCounts(_ database: TestDatabase) throws -> [Int] {
        let row = try database.connect().query("""
            SELECT (SELECT count(*) FROM outbox.events), (SELECT count(*) FROM outbox.deliveries),
                   (SELECT count(*) FROM outbox.subscriptions), (SELECT count(*) FROM outbox.subscription_state)
            """)[0]
        return try (0..<4).map { try row.decode(Int.self, at: $0) }
    }
}
