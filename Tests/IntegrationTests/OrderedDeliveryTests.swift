import Foundation
import OutboxSQL
import Testing
import TestSupport

/// An ordered subscription delivers each ordering key's events in event order;
/// a failing key holds back only itself.
@Suite(.timeLimit(.minutes(2)))
struct OrderedDeliveryTests {
    @Test func aFailingKeyHoldsBackOnlyItself() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        // The receiver answers each request with the switch named by its x-key header.
        try subscribe(sql, "ordered", receiver.url("/switch-by/x-key/ordered"), ["order.*"], ordered: true)
        try sql.query("UPDATE outbox.subscriptions SET retry_schedule = array_fill(interval '200 milliseconds', ARRAY[50])")
        try receiver.setSwitch("b", status: 500)
        let keys = ["a", "b", "c"]
        let perKey = 10
        for n in 0..<perKey {
            for key in keys {
                try sql.query("""
                    INSERT INTO outbox.events (event_type, payload, ordering_key, headers, event_id)
                    VALUES ('order.updated', jsonb_build_object('n', $1::integer), $2::text, jsonb_build_object('x-key', $2::text), $3)
                    """, [n, key, "\(key)-\(n)"])
            }
        }
        try await InProcessRelay.running(database: database) {
            // a and c flow while b keeps failing.
            try await waitForSuccesses(receiver, key: "a", count: perKey)
            try await waitForSuccesses(receiver, key: "c", count: perKey)
            let bSoFar = try receiver.requests().filter { $0.headers["x-key"] == "b" }
            #expect(!bSoFar.isEmpty)
            #expect(bSoFar.allSatisfy { $0.webhookID == "b-0" && $0.status == 500 })
            try receiver.setSwitch("b", status: 204)
            try await waitForSuccesses(receiver, key: "b", count: perKey)
        }
        let requests = try receiver.requests()
        for key in keys {
            let mine = requests.filter { $0.headers["x-key"] == key }
            // Strict order: each event is first sent only after the one before it succeeded.
            var expected = 0
            for request in mine {
                #expect(request.webhookID == "\(key)-\(expected)", "key \(key): got \(request.webhookID ?? "nil") expecting \(key)-\(expected)")
                if request.status == 204 { expected += 1 }
            }
            #expect(expected == perKey)
        }
    }

    @Test func unorderedSubscriptionsDoNotWaitForEarlierEvents() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "unordered", receiver.url("/switch-by/x-key/unordered"), ["order.*"])
        try receiver.setSwitch("stuck", status: 500)
        try sql.query("""
            INSERT INTO outbox.events (event_type, payload, ordering_key, headers, event_id)
            VALUES ('order.updated', '{}', 'k', '{"x-key": "stuck"}', 'first'),
                   ('order.updated', '{}', 'k', '{"x-key": "fine"}', 'second')
            """)
        try await InProcessRelay.running(database: database) {
            _ = try await receiver.waitForRequests(count: 1, matching: { $0.webhookID == "second" && $0.status == 204 }, timeout: .seconds(10))
        }
    }
}

/// Waits until `count` requests with `x-key: key` were answered 204.
private func waitForSuccesses(_ receiver: TestReceiver, key: String, count: Int) async throws {
    _ = try await receiver.waitForRequests(
        count: count, matching: { $0.headers["x-key"] == key && $0.status == 204 }, timeout: .seconds(20))
}
