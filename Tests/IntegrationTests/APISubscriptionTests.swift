import Foundation
import Testing

/// `/api/v1/subscriptions`: list, show, create, update, delete, rotate-secret.
@Suite("Admin API: subscriptions")
struct APISubscriptionTests {
    static let create = #"{"name":"orders","url":"https://example.com/hook","event_types":["order.*"],"ordered":true,"headers":{"x-team":"shop"},"settings":{"timeout":5,"retry_schedule":[1,60],"max_in_flight":3}}"#

    @Test("create returns the secret once; list and show never do")
    func createListShow() async throws {
        try await APITestServer.running { server in
            let created = try await server.request("POST", "/api/v1/subscriptions", json: Self.create)
            #expect(created.status == 201, "\(created)")
            let body = try created.json()
            let secret = try #require(body["secret"] as? String)
            #expect(secret.hasPrefix("whsec_"))
            #expect(body["ordered"] as? Bool == true)
            let settings = try #require(body["settings"] as? [String: Any])
            #expect(settings["timeout"] as? Double == 5)
            #expect(settings["retry_schedule"] as? [Double] == [1, 60])
            #expect(settings["max_in_flight"] as? Int == 3)
            #expect(settings["rate_limit"] is NSNull)

            let list = try await server.request("GET", "/api/v1/subscriptions", auth: .read)
            #expect(list.status == 200)
            let items = try #require(try list.json()["subscriptions"] as? [[String: Any]])
            #expect(items.map { $0["name"] as? String } == ["orders"])
            #expect(!list.text.contains(secret))

            let shown = try await server.request("GET", "/api/v1/subscriptions/orders", auth: .read)
            #expect(shown.status == 200)
            #expect(try shown.json()["url"] as? String == "https://example.com/hook")
            #expect(!shown.text.contains("whsec_"))

            let missing = try await server.request("GET", "/api/v1/subscriptions/nope", auth: .read)
            #expect(missing.status == 404)
            #expect(missing.errorCode == "not_found")

            let duplicate = try await server.request("POST", "/api/v1/subscriptions", json: Self.create)
            #expect(duplicate.status == 409, "\(duplicate)")
        }
    }

    @Test("unknown fields and wrong types are 400; the schema's refusals are 422; nothing is created")
    func badInput() async throws {
        try await APITestServer.running { server in
            let bad400 = [
                #"{"name":"a","url":"https://example.com","event_types":["*"],"colour":"red"}"#,
                #"{"name":"a","url":"https://example.com","event_types":"*"}"#,
                #"{"name":1,"url":"https://example.com","event_types":["*"]}"#,
                #"{"name":"a","url":"https://example.com","event_types":["*"],"enabled":"yes"}"#,
                #"{"name":"a","url":"https://example.com","event_types":["*"],"settings":{"speed":1}}"#,
                #"{"name":"a","url":"https://example.com","event_types":["*"],"settings":{"timeout":"5s"}}"#,
                #"{"url":"https://example.com","event_types":["*"]}"#,
                #"[1,2]"#,
                #"not json"#,
            ]
            for body in bad400 {
                let answer = try await server.request("POST", "/api/v1/subscriptions", json: body)
                #expect(answer.status == 400, "\(body) → \(answer)")
                #expect(answer.errorCode == "bad_request", "\(body) → \(answer)")
            }
            let bad422 = [
                #"{"name":"a","url":"ftp://example.com","event_types":["*"]}"#,
                #"{"name":"a","url":"https://example.com","event_types":[]}"#,
                #"{"name":"a","url":"https://example.com","event_types":["*"],"settings":{"max_in_flight":0}}"#,
            ]
            for body in bad422 {
                let answer = try await server.request("POST", "/api/v1/subscriptions", json: body)
                #expect(answer.status == 422, "\(body) → \(answer)")
                let message = try #require((try answer.json()["error"] as? [String: Any])?["message"] as? String)
                #expect(message.contains("subscription \"a\""), "\(message)")
            }
            #expect(try server.scalar("SELECT count(*) FROM outbox.subscriptions", as: Int64.self) == 0)
        }
    }

    @Test("PATCH changes url, event_types, enabled and settings; bad input changes nothing")
    func update() async throws {
        try await APITestServer.running { server in
            #expect(try await server.request("POST", "/api/v1/subscriptions", json: Self.create).status == 201)
            let patched = try await server.request(
                "PATCH", "/api/v1/subscriptions/orders",
                json: #"{"url":"https://example.org/new","event_types":["*"],"enabled":false,"settings":{"timeout":null,"rate_limit":2.5}}"#)
            #expect(patched.status == 200, "\(patched)")
            let body = try patched.json()
            #expect(body["url"] as? String == "https://example.org/new")
            #expect(body["event_types"] as? [String] == ["*"])
            #expect(body["enabled"] as? Bool == false)
            #expect(body["disabled_reason"] as? String != nil)
            let settings = try #require(body["settings"] as? [String: Any])
            #expect(settings["timeout"] is NSNull)
            #expect(settings["rate_limit"] as? Double == 2.5)
            #expect(settings["max_in_flight"] as? Int == 3)

            for bad in [#"{"name":"other"}"#, #"{"enabled":1}"#, #"{"url":"nope"}"#] {
                let answer = try await server.request("PATCH", "/api/v1/subscriptions/orders", json: bad)
                #expect([400, 422].contains(answer.status), "\(bad) → \(answer)")
            }
            #expect(try server.scalar("SELECT url FROM outbox.subscriptions", as: String.self) == "https://example.org/new")
            let missing = try await server.request("PATCH", "/api/v1/subscriptions/nope", json: #"{"enabled":true}"#)
            #expect(missing.status == 404)
            let enabled = try await server.request("PATCH", "/api/v1/subscriptions/orders", json: #"{"enabled":true}"#)
            #expect(try enabled.json()["disabled_reason"] is NSNull)
        }
    }

    @Test("rotate-secret returns a new secret and keeps the old one signing; DELETE removes")
    func rotateAndDelete() async throws {
        try await APITestServer.running { server in
            let created = try await server.request("POST", "/api/v1/subscriptions", json: Self.create)
            let first = try #require(try created.json()["secret"] as? String)
            let rotated = try await server.request("POST", "/api/v1/subscriptions/orders/rotate-secret")
            #expect(rotated.status == 200, "\(rotated)")
            let second = try #require(try rotated.json()["secret"] as? String)
            #expect(second != first && second.hasPrefix("whsec_"))
            #expect(try server.scalar("SELECT previous_secret FROM outbox.subscriptions", as: String.self) == first)
            #expect(try await server.request("POST", "/api/v1/subscriptions/orders/rotate-secret", auth: .read).status == 403)
            #expect(try await server.request("POST", "/api/v1/subscriptions/nope/rotate-secret").status == 404)

            #expect(try await server.request("DELETE", "/api/v1/subscriptions/orders", auth: .read).status == 403)
            let deleted = try await server.request("DELETE", "/api/v1/subscriptions/orders")
            #expect(deleted.status == 204)
            #expect(try server.scalar("SELECT count(*) FROM outbox.subscriptions", as: Int64.self) == 0)
            #expect(try await server.request("DELETE", "/api/v1/subscriptions/orders").status == 404)
        }
    }

    @Test("rotate-secret takes a chosen secret and a grace in seconds; bad ones are refused and change nothing")
    func rotateWithSecretAndGrace() async throws {
        try await APITestServer.running { server in
            let created = try await server.request("POST", "/api/v1/subscriptions", json: Self.create)
            let first = try #require(try created.json()["secret"] as? String)
            let chosen = "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString()
            let rotated = try await server.request(
                "POST", "/api/v1/subscriptions/orders/rotate-secret", json: #"{"secret":"\#(chosen)","grace":3600}"#)
            #expect(rotated.status == 200, "\(rotated)")
            #expect(try rotated.json()["secret"] as? String == chosen)
            #expect(try server.scalar("SELECT secret = $1 AND previous_secret = $2 FROM outbox.subscriptions",
                                      [chosen, first], as: Bool.self))
            // The grace is an hour, not the default day.
            let left: Double = try server.scalar(
                "SELECT extract(epoch FROM previous_secret_expires_at - now())::float8 FROM outbox.subscriptions")
            #expect(left > 3_500 && left <= 3_600, "the old secret signs for \(left) s more")
            let expires = try #require(try rotated.json()["previous_secret_expires_at"] as? String)
            let timestamp = ISO8601DateFormatter()
            timestamp.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            #expect(timestamp.date(from: expires) != nil, "RFC 3339: \(expires)")

            for bad in [#"{"grace":-1}"#, #"{"grace":"1h"}"#, #"{"secret":7}"#, #"{"secrets":"x"}"#] {
                let answer = try await server.request("POST", "/api/v1/subscriptions/orders/rotate-secret", json: bad)
                #expect(answer.status == 400, "\(bad) → \(answer)")
            }
            let weak = try await server.request("POST", "/api/v1/subscriptions/orders/rotate-secret", json: #"{"secret":"whsec_short"}"#)
            #expect(weak.status == 422, "\(weak)")
            #expect(try server.scalar("SELECT secret FROM outbox.subscriptions", as: String.self) == chosen, "refusals changed nothing")

            // grace 0: the previous secret stops signing at once.
            let immediate = try await server.request("POST", "/api/v1/subscriptions/orders/rotate-secret", json: #"{"grace":0}"#)
            #expect(immediate.status == 200, "\(immediate)")
            #expect(try server.scalar("SELECT previous_secret_expires_at <= now() FROM outbox.subscriptions", as: Bool.self))
        }
    }
}
