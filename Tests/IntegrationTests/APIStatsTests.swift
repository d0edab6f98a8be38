import Foundation
import Testing
import TestSupport

/// `GET /api/v1/stats`: backlog, window counts, rates and percentiles from known rows.
@Suite("Admin API: stats")
struct APIStatsTests {
    /// Subscription `a` (events `a.*`): four deliveries succeeded 30 s ago with latencies
    /// 100–400 ms and 2xx attempts of 10–40 ms, two succeeded 3 min ago (1000 ms, attempts
    /// of 50 ms), one 10 min ago (outside the window, after an old failed attempt), one
    /// pending. Subscription `b` (events `b.*`): one dead a minute ago after two 500s (100,
    /// 200 ms), one dead 20 min ago, one pending, one delivering; its circuit is open after
    /// 3 failures. A succeeded delivery is its last attempt (`outcome = 'succeeded'`).
    static func seed(_ server: APITestServer) throws {
        let connection = try server.database.connect()
        _ = try connection.query("SELECT outbox.subscribe('a', 'https://example.com/a', ARRAY['a.*'])")
        _ = try connection.query("SELECT outbox.subscribe('b', 'https://example.com/b', ARRAY['b.*'])")
        for index in 1...8 { _ = try connection.query("SELECT outbox.publish('a.x', '{}', event_id => $1)", ["a\(index)"]) }
        for index in 1...4 { _ = try connection.query("SELECT outbox.publish('b.x', '{}', event_id => $1)", ["b\(index)"]) }
        try QueuedDeliveries.store(connection)
        _ = try connection.query("""
            UPDATE outbox.delivery_queue AS d
            SET status = v.status,
                completed_at = now() - v.ago,
                lease_owner = CASE WHEN v.status = 'delivering' THEN 'test' END,
                lease_expires_at = CASE WHEN v.status = 'delivering' THEN now() + interval '1 minute' END
            FROM (VALUES
                ('b1', 'dead', interval '1 minute'),
                ('b2', 'dead', interval '20 minutes'),
                ('b4', 'delivering', NULL)
            ) AS v(event_id, status, ago)
            WHERE d.event_id = v.event_id
            """)
        // In flight is counted as the claim counts it (outbox.backlog: claimed minus ended), so the
        // delivering row above is also a claim made.
        _ = try connection.query("""
            UPDATE outbox.subscription_cursors
            SET claimed = claimed + 1
            WHERE subscription_id = (SELECT id FROM outbox.subscriptions WHERE name = 'b')
            """)
        _ = try connection.query("""
            INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code,
                                         subscription_id, event_seq, delivery_created_at, outcome)
            SELECT d.id, d.event_id, v.attempt, now() - v.ago, v.duration_ms, v.status_code, d.subscription_id, d.event_seq,
                   now() - v.ago + v.duration_ms * interval '1 millisecond' - coalesce(v.latency, interval '0'), v.outcome
            FROM (VALUES
                ('a1', 1, interval '31 seconds', 10.0, 200, interval '100 ms', 'succeeded'),
                ('a2', 1, interval '31 seconds', 20.0, 200, interval '200 ms', 'succeeded'),
                ('a3', 1, interval '31 seconds', 30.0, 204, interval '300 ms', 'succeeded'),
                ('a4', 1, interval '31 seconds', 40.0, 200, interval '400 ms', 'succeeded'),
                ('a5', 1, interval '3 minutes', 50.0, 200, interval '1000 ms', 'succeeded'),
                ('a6', 1, interval '3 minutes', 50.0, 200, interval '1000 ms', 'succeeded'),
                ('a7', 1, interval '11 minutes', 5000.0, 500, NULL, 'retry'),
                ('a7', 2, interval '10 minutes', 5.0, 200, interval '1000 ms', 'succeeded'),
                ('b1', 1, interval '70 seconds', 100.0, 500, NULL, 'retry'),
                ('b1', 2, interval '65 seconds', 200.0, 500, NULL, 'dead')
            ) AS v(event_id, attempt, ago, duration_ms, status_code, latency, outcome)
            JOIN outbox.delivery_queue AS d ON d.event_id = v.event_id
            """)
        _ = try connection.query("""
            DELETE FROM outbox.delivery_queue AS d
            USING outbox.attempts AS a
            WHERE a.delivery_id = d.id AND a.outcome = 'succeeded'
            """)
        _ = try connection.query("""
            UPDATE outbox.subscription_state
            SET consecutive_failures = 3, circuit_state = 'open', failing_since = now() - interval '1 minute'
            WHERE subscription_id = (SELECT id FROM outbox.subscriptions WHERE name = 'b')
            """)
    }

    @Test("backlog, throughput, success rate and percentiles overall and per subscription, from known rows")
    func figures() async throws {
        try await APITestServer.running { server in
            try Self.seed(server)
            let answer = try await server.request("GET", "/api/v1/stats", auth: .read)
            #expect(answer.status == 200, "\(answer)")
            let body = try answer.json()
            let overall = try #require(body["overall"] as? [String: Any])
            #expect(overall["pending"] as? Int == 2)
            #expect(overall["delivering"] as? Int == 1)
            #expect(overall["dead"] as? Int == 2)
            #expect(overall["succeeded_1m"] as? Int == 4)
            #expect(overall["succeeded_5m"] as? Int == 6)
            #expect(overall["dead_5m"] as? Int == 1)
            #expect(overall["deliveries_per_second_1m"] as? Double == 0.067)
            #expect(overall["deliveries_per_second_5m"] as? Double == 0.02)
            #expect(overall["attempts_5m"] as? Int == 8)
            #expect(overall["success_rate_5m"] as? Double == 0.75)
            // percentile_cont over 100, 200, 300, 400, 1000, 1000 ms and over 10, 20, 30, 40, 50, 50, 100, 200 ms.
            let latency = try #require(overall["latency_ms_5m"] as? [String: Double])
            #expect(latency == ["p50": 350, "p95": 1000, "p99": 1000])
            let duration = try #require(overall["attempt_duration_ms_5m"] as? [String: Double])
            #expect(duration["p50"] == 45)
            #expect(duration["p99"] == 193)

            let subscriptions = try #require(body["subscriptions"] as? [[String: Any]])
            #expect(subscriptions.compactMap { $0["name"] as? String } == ["a", "b"])
            let a = subscriptions[0], b = subscriptions[1]
            #expect(a["pending"] as? Int == 1)
            #expect(a["succeeded_5m"] as? Int == 6)
            #expect(a["success_rate_5m"] as? Double == 1)
            #expect(a["circuit_state"] as? String == "closed")
            #expect(b["dead"] as? Int == 2)
            #expect(b["dead_5m"] as? Int == 1)
            #expect(b["delivering"] as? Int == 1)
            #expect(b["success_rate_5m"] as? Double == 0)
            #expect(b["latency_ms_5m"] is NSNull)
            #expect(b["circuit_state"] as? String == "open")
            #expect(b["consecutive_failures"] as? Int == 3)
        }
    }

    @Test("with no deliveries every figure is zero or null")
    func empty() async throws {
        try await APITestServer.running { server in
            let body = try await server.request("GET", "/api/v1/stats", auth: .read).json()
            let overall = try #require(body["overall"] as? [String: Any])
            #expect(overall["pending"] as? Int == 0)
            #expect(overall["success_rate_5m"] is NSNull)
            #expect(overall["latency_ms_5m"] is NSNull)
            #expect((body["subscriptions"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("no token or a wrong one is 401; an unknown query parameter is 400")
    func refused() async throws {
        try await APITestServer.running { server in
            let none = try await server.request("GET", "/api/v1/stats", auth: .none)
            #expect(none.status == 401 && none.errorCode == "unauthorized", "\(none)")
            let wrong = try await server.request("GET", "/api/v1/stats", auth: .custom("Bearer obx_wrong"))
            #expect(wrong.status == 401, "\(wrong)")
            let unknown = try await server.request("GET", "/api/v1/stats?window=1h", auth: .read)
            #expect(unknown.status == 400 && unknown.errorCode == "bad_request", "\(unknown)")
        }
    }
}
