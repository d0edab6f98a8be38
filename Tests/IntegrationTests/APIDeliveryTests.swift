import Foundation
import Testing
import TestSupport

/// `/api/v1/deliveries`, one delivery, and replays of one or of dead letters.
@Suite("Admin API: deliveries")
struct APIDeliveryTests {
    /// Two subscriptions, five events: ten pending deliveries; those of `b` dead with one attempt each.
    static func seed(_ server: APITestServer) throws {
        let connection = try server.database.connect()
        _ = try connection.query("SELECT outbox.subscribe('a', 'https://example.com/a', ARRAY['*'])")
        _ = try connection.query("SELECT outbox.subscribe('b', 'https://example.com/b', ARRAY['order.*'])")
        for index in 1...5 {
            _ = try connection.query("SELECT outbox.publish($1, $2::jsonb, event_id => $3)",
                                     [index % 2 == 0 ? "order.paid" : "order.created", "{\"n\":\(index)}", "event-\(index)"])
        }
        try QueuedDeliveries.store(connection)
        _ = try connection.query("""
            UPDATE outbox.delivery_queue
            SET status = 'dead', attempts = 1, completed_at = now(), last_status_code = 500, last_error = 'HTTP 500'
            WHERE subscription_id = (SELECT id FROM outbox.subscriptions WHERE name = 'b')
            """)
        _ = try connection.query("""
            INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code, response_excerpt)
            SELECT id, event_id, 1, now(), 12.5, 500, 'oops' FROM outbox.deliveries WHERE status = 'dead'
            """)
    }

    @Test("list: newest first, filters, cursor pagination; a bad cursor or filter is 400")
    func list() async throws {
        try await APITestServer.running { server in
            try Self.seed(server)
            var seen: [Int] = []
            var cursor: String?
            repeat {
                let path = "/api/v1/deliveries?limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await server.request("GET", path, auth: .read)
                #expect(page.status == 200, "\(page)")
                let body = try page.json()
                let items = try #require(body["deliveries"] as? [[String: Any]])
                seen += items.compactMap { $0["id"] as? Int }
                cursor = body["next_cursor"] as? String
            } while cursor != nil
            #expect(seen.count == 10)
            #expect(seen == seen.sorted(by: >))

            let dead = try await server.request("GET", "/api/v1/deliveries?status=dead&subscription=b", auth: .read)
            #expect((try dead.json()["deliveries"] as? [[String: Any]])?.count == 5)
            let paid = try await server.request("GET", "/api/v1/deliveries?event_type=order.paid&subscription=a", auth: .read)
            #expect((try paid.json()["deliveries"] as? [[String: Any]])?.count == 2)
            let one = try await server.request("GET", "/api/v1/deliveries?event_id=event-3", auth: .read)
            #expect((try one.json()["deliveries"] as? [[String: Any]])?.count == 2)
            let future = try await server.request("GET", "/api/v1/deliveries?since=2999-01-01T00:00:00Z", auth: .read)
            #expect((try future.json()["deliveries"] as? [[String: Any]])?.count == 0)
            let past = try await server.request("GET", "/api/v1/deliveries?until=2000-01-01T00:00:00.5Z", auth: .read)
            #expect((try past.json()["deliveries"] as? [[String: Any]])?.count == 0)

            for bad in ["cursor=garbage", "cursor=ZDp4", "status=lost", "limit=0", "limit=x", "since=yesterday", "colour=red"] {
                let answer = try await server.request("GET", "/api/v1/deliveries?\(bad)", auth: .read)
                #expect(answer.status == 400, "\(bad) → \(answer)")
                #expect(answer.errorCode != nil)
            }
        }
    }

    @Test("one delivery comes with its event and attempts; unknown or malformed ids are 404/400")
    func detail() async throws {
        try await APITestServer.running { server in
            try Self.seed(server)
            let id: Int64 = try server.scalar("SELECT min(id) FROM outbox.deliveries WHERE status = 'dead'")
            let answer = try await server.request("GET", "/api/v1/deliveries/\(id)", auth: .read)
            #expect(answer.status == 200, "\(answer)")
            let body = try answer.json()
            #expect(body["status"] as? String == "dead")
            #expect(body["subscription"] as? String == "b")
            let event = try #require(body["event"] as? [String: Any])
            #expect(event["payload"] as? [String: Int] != nil)
            let attempts = try #require(body["attempt_history"] as? [[String: Any]])
            #expect(attempts.count == 1)
            #expect(attempts.first?["status_code"] as? Int == 500)
            #expect(try await server.request("GET", "/api/v1/deliveries/999999", auth: .read).status == 404)
            #expect(try await server.request("GET", "/api/v1/deliveries/abc", auth: .read).status == 400)
        }
    }

    @Test("replay one delivery: dead becomes pending; a pending one is 409; a read token is 403")
    func replayOne() async throws {
        try await APITestServer.running { server in
            try Self.seed(server)
            let dead: Int64 = try server.scalar("SELECT min(id) FROM outbox.deliveries WHERE status = 'dead'")
            let pending: Int64 = try server.scalar("SELECT min(id) FROM outbox.deliveries WHERE status = 'pending'")
            #expect(try await server.request("POST", "/api/v1/deliveries/\(dead)/replay", auth: .read).status == 403)
            let replayed = try await server.request("POST", "/api/v1/deliveries/\(dead)/replay")
            #expect(replayed.status == 200, "\(replayed)")
            #expect(try replayed.json()["status"] as? String == "pending")
            let refused = try await server.request("POST", "/api/v1/deliveries/\(pending)/replay")
            #expect(refused.status == 409, "\(refused)")
            #expect(try await server.request("POST", "/api/v1/deliveries/999999/replay").status == 404)
        }
    }

    @Test("replay dead letters by subscription and time; returns the count; bad input is 400 and replays nothing")
    func replayDeadLetters() async throws {
        try await APITestServer.running { server in
            try Self.seed(server)
            for bad in [#"{"subscription":1}"#, #"{"since":"soon"}"#, #"{"everything":true}"#] {
                let answer = try await server.request("POST", "/api/v1/dead-letters/replay", json: bad)
                #expect(answer.status == 400, "\(bad) → \(answer)")
            }
            #expect(try await server.request("POST", "/api/v1/dead-letters/replay", json: #"{"subscription":"zzz"}"#).status == 404)
            #expect(try await server.request("POST", "/api/v1/dead-letters/replay", auth: .read, json: "{}").status == 403)
            let none = try await server.request("POST", "/api/v1/dead-letters/replay", json: #"{"subscription":"a"}"#)
            #expect(try none.json()["replayed"] as? Int == 0)
            let future = try await server.request("POST", "/api/v1/dead-letters/replay", json: #"{"since":"2999-01-01T00:00:00Z"}"#)
            #expect(try future.json()["replayed"] as? Int == 0)
            #expect(try server.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'dead'", as: Int64.self) == 5)
            let all = try await server.request("POST", "/api/v1/dead-letters/replay", json: #"{"subscription":"b"}"#)
            #expect(all.status == 200, "\(all)")
            #expect(try all.json()["replayed"] as? Int == 5)
            #expect(try server.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'dead'", as: Int64.self) == 0)
        }
    }

    @Test("purge dead letters by subscription and age; older_than is required; a read token is 403")
    func purgeDeadLetters() async throws {
        try await APITestServer.running { server in
            try Self.seed(server)
            for bad in [#"{}"#, #"{"older_than":-5}"#, #"{"older_than":"30d"}"#, #"{"older_than":0,"dead":true}"#] {
                let answer = try await server.request("POST", "/api/v1/dead-letters/purge", json: bad)
                #expect(answer.status == 400, "\(bad) → \(answer)")
            }
            #expect(try await server.request("POST", "/api/v1/dead-letters/purge", auth: .read, json: #"{"older_than":0}"#).status == 403)
            #expect(try await server.request("POST", "/api/v1/dead-letters/purge", json: #"{"subscription":"zzz","older_than":0}"#).status == 404)
            // They died just now: none is older than an hour, and a's has none at all.
            let young = try await server.request("POST", "/api/v1/dead-letters/purge", json: #"{"older_than":3600}"#)
            #expect(young.status == 200, "\(young)")
            #expect(try young.json()["purged"] as? Int == 0)
            #expect(try await server.request("POST", "/api/v1/dead-letters/purge", json: #"{"subscription":"a","older_than":0}"#)
                .json()["purged"] as? Int == 0)
            #expect(try server.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'dead'", as: Int64.self) == 5)
            let purged = try await server.request("POST", "/api/v1/dead-letters/purge", json: #"{"subscription":"b","older_than":0}"#)
            #expect(try purged.json()["purged"] as? Int == 5)
            #expect(try server.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'dead'", as: Int64.self) == 0)
            #expect(try server.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'pending'", as: Int64.self) == 5,
                    "only dead letters go")
        }
    }
}
