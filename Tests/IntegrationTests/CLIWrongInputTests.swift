import Foundation
import OutboxSQL
import Testing
import TestSupport

/// Wrong input to the operator commands: a one-line `Error:` naming the problem,
/// a non-zero exit (64 for arguments refused before the database is asked, 1 for
/// what the database or a lookup refuses), nothing on stdout, and nothing changed.
@Suite(.timeLimit(.minutes(2)))
struct CLIWrongInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let testDescription: String
        /// The arguments, given the id of the fixture's pending delivery.
        let arguments: @Sendable (Int64) -> [String]
        var environment: [String: String] = [:]
        let status: Int32
        /// Text the first line of stderr must contain.
        let message: String
    }

    static let url = "https://example.com/hooks"

    static func add(_ what: String, _ extra: [String], name: String = "fresh", status: Int32 = 1, _ message: String) -> Case {
        Case(testDescription: "subscription add: \(what)",
             arguments: { _ in ["subscription", "add", name, "--url", url, "--events", "order.*"] + extra },
             status: status, message: message)
    }

    static func command(_ what: String, _ arguments: [String], environment: [String: String] = [:],
                        status: Int32 = 1, _ message: String) -> Case {
        Case(testDescription: what, arguments: { _ in arguments }, environment: environment, status: status, message: message)
    }

    static let cases: [Case] = [
        Case(testDescription: "subscription add: ftp:// URL",
             arguments: { _ in ["subscription", "add", "fresh", "--url", "ftp://example.com/in", "--events", "*"] },
             status: 1, message: #"subscription "fresh": url must be an http:// or https:// URL with a host"#),
        Case(testDescription: "subscription add: malformed pattern",
             arguments: { _ in ["subscription", "add", "fresh", "--url", url, "--events", "order.created,order.*.x"] },
             status: 1, message: #"event type pattern "order.*.x" is malformed"#),
        add("duplicate name", [], name: "orders", #"a subscription named "orders" already exists"#),
        add("malformed name", [], name: "has space", #"subscription name "has space" is malformed"#),
        add("negative timeout", ["--timeout", "-5s"], status: 64, #"The value '-5s' is invalid for '--timeout <timeout>': "-5s" is negative"#),
        // outbox.subscribe succeeds, the settings UPDATE fails: the transaction keeps neither.
        add("zero timeout", ["--timeout", "0s"], #"subscription "fresh": timeout must be positive"#),
        add("retry schedule with a non-duration", ["--retry-schedule", "5s,abc"], status: 64, #""abc" is not a duration"#),
        add("bad secret", ["--secret", "whsec_tooshort"], "secret must be whsec_ followed by base64 of at least 24 bytes"),
        add("a header the relay owns", ["--header", "webhook-id=x"], #"may not set header "webhook-id""#),
        add("a header without a value", ["--header", "x-tenant"], status: 64, "write a header as name=value"),
        add("zero max in flight", ["--max-in-flight", "0"], status: 64, #""0" is not a positive whole number"#),
        add("negative rate limit", ["--rate-limit", "-1"], status: 64, "not a positive number of requests per second"),
        command("subscription update: unknown subscription", ["subscription", "update", "nope", "--timeout", "5s"],
                #"no subscription is named "nope""#),
        command("subscription update: nothing to change", ["subscription", "update", "orders"], status: 64, "nothing to update"),
        command("subscription update: a setting both set and cleared",
                ["subscription", "update", "orders", "--timeout", "5s", "--clear-setting", "timeout"],
                status: 64, "--clear-setting timeout contradicts a new value"),
        command("subscription update: URL without a host", ["subscription", "update", "orders", "--url", "https:///path"],
                "url must be an http:// or https:// URL with a host"),
        command("subscription update: --ordered maybe", ["subscription", "update", "orders", "--ordered", "maybe"],
                status: 64, #""maybe" is not true or false"#),
        command("subscription show: unknown subscription", ["subscription", "show", "nope"], #"no subscription is named "nope""#),
        command("subscription disable: unknown subscription", ["subscription", "disable", "nope"], #"no subscription is named "nope""#),
        command("subscription enable: unknown subscription", ["subscription", "enable", "nope"], #"no subscription is named "nope""#),
        command("subscription remove: unknown subscription", ["subscription", "remove", "nope"], #"no subscription is named "nope""#),
        command("subscription rotate-secret: unknown subscription", ["subscription", "rotate-secret", "nope"],
                #"no subscription is named "nope""#),
        command("subscription rotate-secret: bad secret", ["subscription", "rotate-secret", "orders", "--secret", "secret"],
                "secret must be whsec_"),
        command("subscription rotate-secret: bad grace", ["subscription", "rotate-secret", "orders", "--grace", "soon"],
                status: 64, #"--grace: "soon" is not a duration"#),
        Case(testDescription: "replay: a pending delivery",
             arguments: { id in ["replay", "--delivery", String(id)] },
             status: 1, message: "is pending: only dead or succeeded deliveries can be replayed"),
        Case(testDescription: "replay: both --delivery and --dead",
             arguments: { id in ["replay", "--delivery", String(id), "--dead"] },
             status: 64, message: "give exactly one of --delivery ID or --dead"),
        command("replay: neither --delivery nor --dead", ["replay"], status: 64, "give exactly one of --delivery ID or --dead"),
        command("replay: unknown delivery", ["replay", "--delivery", "987654"], "delivery 987654 does not exist"),
        command("replay: unknown subscription", ["replay", "--dead", "--subscription", "nope"], #"no subscription is named "nope""#),
        command("publish: invalid JSON", ["publish", "--type", "order.created", "--data", #"{"id":"#],
                "invalid input syntax for type json"),
        command("publish: bad type", ["publish", "--type", "order created", "--data", "{}"],
                #"outbox.events.event_type "order created" is malformed"#),
        command("publish: duplicate event id", ["publish", "--type", "order.created", "--data", "{}", "--id", "ev-1"],
                #"an event with event_id "ev-1" already exists"#),
        command("publish: headers naming content-type", ["publish", "--type", "a", "--data", "{}", "--header", "Content-Type=x"],
                #"may not set header "Content-Type""#),
        command("deliveries: unknown status", ["deliveries", "--status", "bogus"], status: 64,
                "The value 'bogus' is invalid for '--status <status>'"),
        command("deliveries: zero limit", ["deliveries", "--limit", "0"], status: 64, #""0" is not a positive whole number"#),
        command("deliveries: unknown subscription", ["deliveries", "--subscription", "nope"], #"no subscription is named "nope""#),
        command("deliveries purge: without --dead", ["deliveries", "purge", "--older-than", "0s"], status: 64, "purge needs --dead"),
        command("deliveries purge: bad --older-than", ["deliveries", "purge", "--dead", "--older-than", "30 days"], status: 64,
                #"--older-than: "30 days" is not a duration"#),
        command("deliveries purge: no --older-than", ["deliveries", "purge", "--dead"], status: 64, "purge needs --older-than"),
        command("status: OUTBOX_JSON that is not a boolean", ["status"], environment: ["OUTBOX_JSON": "maybe"],
                status: 64, #"OUTBOX_JSON: "maybe" is not true or false"#),
    ]

    @Test(arguments: cases)
    func refusedWithAMessageAndNothingChanged(_ wrong: Case) async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('orders', $1, '{order.*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')", [Self.url])
        try sql.query("SELECT outbox.publish('order.created', '{\"id\": 1}', event_id => 'ev-1')")
        try QueuedDeliveries.store(sql)
        let pending = try database.scalar("SELECT id FROM outbox.deliveries", as: Int64.self)
        let before = try DatabaseSnapshot(sql)

        let run = try await CLI.run(wrong.arguments(pending), database: database, environment: wrong.environment)

        #expect(run.status == wrong.status, "\(run)")
        #expect(run.stdout.isEmpty, "\(run)")
        let first = try #require(run.errorLines.first, "\(run)")
        #expect(first.hasPrefix("Error: "))
        #expect(first.contains(wrong.message), "\(run)")
        if wrong.status == 1 {
            #expect(run.errorLines.count == 1, "one line: \(run)")
        }
        #expect(try DatabaseSnapshot(sql) == before)
    }
}

/// Everything an operator command could change: row counts, and a digest of
/// every row of the outbox tables.
struct DatabaseSnapshot: Equatable, CustomStringConvertible {
    let counts: String
    let digest: String

    init(_ sql: Connection) throws {
        let row = try sql.query("""
            SELECT format('subscriptions=%s events=%s deliveries=%s attempts=%s',
                          (SELECT count(*) FROM outbox.subscriptions), (SELECT count(*) FROM outbox.events),
                          (SELECT count(*) FROM outbox.deliveries), (SELECT count(*) FROM outbox.attempts)),
                   md5(concat_ws('#',
                       (SELECT string_agg(s::text, '|' ORDER BY s.id) FROM outbox.subscriptions AS s),
                       (SELECT string_agg(st::text, '|' ORDER BY st.subscription_id) FROM outbox.subscription_state AS st),
                       (SELECT string_agg(e::text, '|' ORDER BY e.id) FROM outbox.events AS e),
                       (SELECT string_agg(d::text, '|' ORDER BY d.id, d.subscription_id, d.event_seq) FROM outbox.deliveries AS d),
                       (SELECT string_agg(a::text, '|' ORDER BY a.id) FROM outbox.attempts AS a)))
            """)[0]
        counts = try row.decode(String.self, at: 0)
        digest = try row.decode(String.self, at: 1)
    }

    var description: String { "\(counts) (rows \(digest))" }
}
