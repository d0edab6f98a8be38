import Foundation
import OutboxSQL
import Testing
import TestSupport

/// `/metrics` (SPEC §7) is valid Prometheus text, and after a run its counters agree
/// with the rows: deliveries by subscription and outcome, attempts, latency, backlog.
@Suite(.timeLimit(.minutes(2)))
struct MetricsTests {
    /// What the database says one subscription went through.
    struct RowCounts: Equatable, CustomStringConvertible {
        var succeeded = 0
        var attempts = 0
        var failedAttempts = 0
        var description: String { "succeeded \(succeeded), attempts \(attempts) (\(failedAttempts) failed)" }
    }

    @Test func countersMatchTheRowsAfterARun() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        // Every event fails its first attempt at `flaky` (500, then 204) and succeeds at once at `steady`.
        try ProcessTestSQL.subscribe(sql, name: "flaky", url: receiver.url("/fail-first/1/flaky"))
        try ProcessTestSQL.subscribe(sql, name: "steady", url: receiver.url("/ok/steady"))
        // Every event's first attempt at `flaky` fails: its circuit must not open and pause it.
        let relay = try RelayProcess(database: database, environment: ["OUTBOX_BREAKER_FAILURES": "1000"])
        let admin = try await AdminPort.of(relay)

        let events = 15
        try ProcessTestSQL.publish(sql, count: events)
        let succeeded = try await ProcessTestSQL.waitForDeliveries(sql, where: "status = 'succeeded'", count: 2 * events, timeout: .seconds(30))
        try #require(succeeded == 2 * events, "only \(succeeded) of \(2 * events) deliveries succeeded; relay log ends:\n\(relay.logTail())")
        let rows = try Self.rowCounts(sql)
        #expect(rows["flaky"] == RowCounts(succeeded: events, attempts: 2 * events, failedAttempts: events), "\(rows)")
        #expect(rows["steady"] == RowCounts(succeeded: events, attempts: events, failedAttempts: 0), "\(rows)")

        // Counters move right after the rows are written, and the backlog gauge is
        // refreshed every 5 s: scrape until both have caught up.
        let deadline = ContinuousClock.now.advanced(by: .seconds(15))
        var metrics = try await admin.metrics()
        while !Self.caughtUp(metrics, with: rows), ContinuousClock.now < deadline {
            try relay.requireRunning()
            try await Task.sleep(for: .milliseconds(250))
            metrics = try await admin.metrics()
        }

        let outboxFamilies = metrics.families.filter { $0.hasPrefix("outbox_") }
        #expect(metrics.types["outbox_deliveries_total"] == "counter", "\(metrics.types)")
        #expect(metrics.types["outbox_attempt_duration_seconds"] == "histogram", "\(metrics.types)")
        #expect(metrics.types["outbox_delivery_latency_seconds"] == "histogram", "\(metrics.types)")
        #expect(metrics.types["outbox_backlog_deliveries"] == "gauge", "\(metrics.types)")
        #expect(outboxFamilies.allSatisfy { metrics.types[$0] != nil }, "families without # TYPE: \(outboxFamilies.filter { metrics.types[$0] == nil })")
        let others = metrics.families.subtracting(outboxFamilies)
        if !others.isEmpty { print("MetricsTests: ignoring metrics not named outbox_…: \(others.sorted())") }

        for (name, counts) in rows.sorted(by: { $0.key < $1.key }) {
            let subscription = ["subscription": name]
            #expect(metrics.value("outbox_deliveries_total", subscription.merging(["outcome": "succeeded"]) { $1 }) == Double(counts.succeeded),
                    "\(name): \(metrics.samples("outbox_deliveries_total", subscription)) vs rows \(counts)")
            #expect(metrics.sum("outbox_deliveries_total", subscription.merging(["outcome": "retry"]) { $1 }) == Double(counts.failedAttempts),
                    "\(name): \(metrics.samples("outbox_deliveries_total", subscription)) vs rows \(counts)")
            #expect(metrics.sum("outbox_deliveries_total", subscription.merging(["outcome": "dead"]) { $1 }) == 0)
            #expect(metrics.value("outbox_attempt_duration_seconds_count", subscription) == Double(counts.attempts),
                    "\(name): \(metrics.samples("outbox_attempt_duration_seconds_count")) vs rows \(counts)")
            Self.expectHistogram(metrics, "outbox_attempt_duration_seconds", subscription, count: counts.attempts)
            Self.expectHistogram(metrics, "outbox_delivery_latency_seconds", subscription, count: counts.succeeded)
            #expect(metrics.value("outbox_backlog_deliveries", subscription) == 0,
                    "\(name): \(metrics.samples("outbox_backlog_deliveries")) (refreshed every 5 s)")
        }
        let allAttempts = rows.values.reduce(0) { $0 + $1.attempts }
        #expect(metrics.sum("outbox_attempt_duration_seconds_count") == Double(allAttempts),
                "\(metrics.samples("outbox_attempt_duration_seconds_count")) vs \(allAttempts) rows in outbox.attempts")
        // Labels name subscriptions, never endpoints.
        let leaking = metrics.samples.filter { $0.labels.values.contains { $0.contains("127.0.0.1") || $0.contains("://") } }
        #expect(leaking.isEmpty, "\(leaking)")
        #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
    }

    @Test func theParserAcceptsTheFormatAndRefusesMistakes() throws {
        let good = try PrometheusExposition(parsing: """
            # HELP outbox_x_total A counter\\nwith an escape.
            # TYPE outbox_x_total counter
            outbox_x_total{subscription="a \\"b\\"",outcome="retry"} 3
            outbox_x_total{subscription="c",outcome="retry",} 4 1700000000000
            # a plain comment
            # TYPE outbox_h_seconds histogram
            outbox_h_seconds_bucket{le="0.5"} 1
            outbox_h_seconds_bucket{le="+Inf"} 2
            outbox_h_seconds_sum 0.75
            outbox_h_seconds_count 2
            outbox_untyped NaN

            """)
        #expect(good.types == ["outbox_x_total": "counter", "outbox_h_seconds": "histogram"])
        #expect(good.help["outbox_x_total"] == "A counter\nwith an escape.")
        #expect(good.value("outbox_x_total", ["subscription": "a \"b\""]) == 3)
        #expect(good.sum("outbox_x_total", ["outcome": "retry"]) == 7)
        #expect(good.value("outbox_h_seconds_bucket", ["le": "+Inf"]) == 2)
        #expect(good.families == ["outbox_x_total", "outbox_h_seconds", "outbox_untyped"])

        let bad = [
            "outbox_a{x=\"1\" 1",  // labels not closed
            "outbox_a{x=1} 1",  // value not quoted
            "outbox_a one",  // not a number
            "9outbox 1",  // name
            "outbox_a 1\noutbox_a 2",  // duplicate
            "# TYPE outbox_a countr",  // type
            "outbox_a 1\n# TYPE outbox_a counter",  // TYPE after samples
            "# TYPE outbox_h histogram\noutbox_h_bucket 1",  // bucket without le
            "outbox_a{x=\"\\q\"} 1",  // escape
        ]
        for text in bad {
            #expect(throws: PrometheusParseError.self, "\(text.debugDescription)") { try PrometheusExposition(parsing: text) }
        }
    }

    /// True when the counters agree with `rows` and the backlog gauge shows nothing pending.
    private static func caughtUp(_ metrics: PrometheusExposition, with rows: [String: RowCounts]) -> Bool {
        rows.allSatisfy { name, counts in
            let subscription = ["subscription": name]
            return metrics.value("outbox_deliveries_total", ["subscription": name, "outcome": "succeeded"]) == Double(counts.succeeded)
                && metrics.sum("outbox_deliveries_total", ["subscription": name, "outcome": "retry"]) == Double(counts.failedAttempts)
                && metrics.value("outbox_attempt_duration_seconds_count", subscription) == Double(counts.attempts)
                && metrics.value("outbox_backlog_deliveries", subscription) == 0
        }
    }

    /// A histogram's buckets never decrease, its `+Inf` bucket equals its count, and the count is `count`.
    private static func expectHistogram(
        _ metrics: PrometheusExposition, _ name: String, _ labels: [String: String], count: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let buckets = metrics.samples(name + "_bucket", labels)
            .compactMap { sample in PrometheusExposition.number(sample.labels["le"] ?? "").map { (le: $0, value: sample.value) } }
            .sorted { $0.le < $1.le }
        #expect(!buckets.isEmpty, "\(name)\(labels) has no buckets", sourceLocation: sourceLocation)
        #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value }, "\(name)\(labels) buckets decrease: \(buckets)",
                sourceLocation: sourceLocation)
        #expect(buckets.last?.le == .infinity && buckets.last?.value == Double(count), "\(name)\(labels) +Inf bucket: \(buckets)",
                sourceLocation: sourceLocation)
        #expect(metrics.value(name + "_count", labels) == Double(count), "\(name)_count\(labels)", sourceLocation: sourceLocation)
        #expect(metrics.value(name + "_sum", labels).map { $0 >= 0 } == true, "\(name)_sum\(labels)", sourceLocation: sourceLocation)
    }

    /// Per subscription name: succeeded deliveries, attempts, and attempts without a 2xx.
    private static func rowCounts(_ sql: Connection) throws -> [String: RowCounts] {
        var counts: [String: RowCounts] = [:]
        for row in try sql.query("""
            SELECT s.name, count(*) FILTER (WHERE d.status = 'succeeded')
            FROM outbox.subscriptions AS s
            JOIN outbox.deliveries AS d ON d.subscription_id = s.id
            GROUP BY s.name
            """).rows {
            counts[try row.decode(String.self, at: 0), default: RowCounts()].succeeded = try row.decode(Int.self, at: 1)
        }
        for row in try sql.query("""
            SELECT s.name, count(*),
                   count(*) FILTER (WHERE a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)
            FROM outbox.subscriptions AS s
            JOIN outbox.deliveries AS d ON d.subscription_id = s.id
            JOIN outbox.attempts AS a ON a.delivery_id = d.id
            GROUP BY s.name
            """).rows {
            let name = try row.decode(String.self, at: 0)
            counts[name, default: RowCounts()].attempts = try row.decode(Int.self, at: 1)
            counts[name, default: RowCounts()].failedAttempts = try row.decode(Int.self, at: 2)
        }
        return counts
    }
}
