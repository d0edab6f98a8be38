import Foundation
import Testing

/// `POST /api/v1/events`: publish, with Idempotency-Key semantics and limits.
@Suite("Admin API: events")
struct APIEventTests {
    @Test("publish is 202; the same key and body again is 200 with the same event; another body is 409")
    func idempotency() async throws {
        try await APITestServer.running { server in
            _ = try server.database.connect().query("SELECT outbox.subscribe('all', 'https://example.com/hook', ARRAY['*'])")
            let body = #"{"event_type":"order.created","payload":{"id":42,"price":1.10},"ordering_key":"order-42"}"#
            let first = try await server.request("POST", "/api/v1/events", json: body, headers: ["Idempotency-Key": "key-1"])
            #expect(first.status == 202, "\(first)")
            let event = try first.json()
            #expect(event["event_id"] as? String == "key-1")
            #expect(event["event_type"] as? String == "order.created")
            let again = try await server.request("POST", "/api/v1/events", json: body, headers: ["Idempotency-Key": "key-1"])
            #expect(again.status == 200, "\(again)")
            #expect(again.text == first.text)
            let different = try await server.request(
                "POST", "/api/v1/events", json: #"{"event_type":"order.created","payload":{"id":43}}"#, headers: ["Idempotency-Key": "key-1"])
            #expect(different.status == 409, "\(different)")
            #expect(different.errorCode == "idempotency_conflict")
            #expect(try server.scalar("SELECT count(*) FROM outbox.events", as: Int64.self) == 1)
            #expect(try server.scalar("SELECT count(*) FROM outbox.deliveries", as: Int64.self) == 1)

            let unkeyed = try await server.request("POST", "/api/v1/events", json: #"{"event_type":"a.b","payload":null}"#)
            #expect(unkeyed.status == 202, "\(unkeyed)")
            #expect((try unkeyed.json()["event_id"] as? String)?.isEmpty == false)
        }
    }

    @Test("bad input is 400, the schema's refusals 422, a body over 1 MiB 413; nothing is published")
    func badInput() async throws {
        try await APITestServer.running { server in
            for body in [
                #"{"event_type":"a.b","payload":{},"extra":1}"#, #"{"event_type":5,"payload":{}}"#,
                #"{"event_type":"a.b"}"#, #"{"event_type":"a.b","payload":{},"headers":"x"}"#, "[]",
                #"{"event_type":"a.b\u0000","payload":{}}"#, #"{"event_type":"a.b","payload":{"k":"\u0000"}}"#,
            ] {
                let answer = try await server.request("POST", "/api/v1/events", json: body)
                #expect(answer.status == 400, "\(body) → \(answer)")
            }
            for body in [#"{"event_type":"","payload":{}}"#, #"{"event_type":"a.b","payload":{},"headers":{"content-type":"x"}}"#] {
                let answer = try await server.request("POST", "/api/v1/events", json: body)
                #expect(answer.status == 422, "\(body) → \(answer)")
                #expect(answer.errorCode == "invalid")
            }
            let huge = Data((#"{"event_type":"a.b","payload":""# + String(repeating: "x", count: 1 << 20) + #""}"#).utf8)
            let tooLarge = try await server.request("POST", "/api/v1/events", body: huge)
            #expect(tooLarge.status == 413, "\(tooLarge.status)")
            #expect(tooLarge.errorCode == "too_large")
            #expect(try await server.request("POST", "/api/v1/events", auth: .read, json: #"{"event_type":"a.b","payload":1}"#).status == 403)
            #expect(try server.scalar("SELECT count(*) FROM outbox.events", as: Int64.self) == 0)
        }
    }
}
