import Foundation
import OutboxAdmin
import OutboxRelay
import OutboxSQL
import Testing

/// Bearer tokens of the admin API: stored hashed, 401 without or with a wrong
/// token, 403 for a read token on a write, JSON error bodies, no CORS.
@Suite("Admin API: authorization")
struct APIAuthTests {
    @Test("tokens are obx_ + base64url of 32 bytes, stored as SHA-256 hex only")
    func tokenFormat() async throws {
        let token = APIToken.generate()
        #expect(token.hasPrefix("obx_"))
        #expect(token.count == 4 + 43)
        #expect(token.dropFirst(4).allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(APIToken.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        try await APITestServer.running { server in
            let stored: Int64 = try server.scalar("SELECT count(*) FROM outbox.api_tokens WHERE token_hash = $1", [server.adminToken])
            #expect(stored == 0)
        }
    }

    @Test("no token, a malformed header or a wrong token is 401 with a JSON error; nothing changes")
    func unauthorized() async throws {
        try await APITestServer.running { server in
            for auth in [APITestServer.Auth.none, .custom("Basic abc"), .custom("Bearer obx_wrong"), .custom("Bearer ")] {
                let answer = try await server.request("GET", "/api/v1/subscriptions", auth: auth)
                #expect(answer.status == 401, "\(answer)")
                #expect(answer.errorCode == "unauthorized")
                #expect(answer.headers["content-type"]?.hasPrefix("application/json") == true)
            }
            let write = try await server.request(
                "POST", "/api/v1/subscriptions", auth: .none, json: #"{"name":"a","url":"http://example.com","event_types":["*"]}"#)
            #expect(write.status == 401)
            let count: Int64 = try server.scalar("SELECT count(*) FROM outbox.subscriptions")
            #expect(count == 0)
        }
    }

    @Test("a read token may GET but a write is 403; an admin token may write")
    func scopes() async throws {
        try await APITestServer.running { server in
            let read = try await server.request("GET", "/api/v1/subscriptions", auth: .read)
            #expect(read.status == 200, "\(read)")
            let lowercase = try await server.request("GET", "/api/v1/subscriptions", auth: .custom("bearer \(server.readToken)"))
            #expect(lowercase.status == 200, "\(lowercase)")
            let body = #"{"name":"a","url":"http://example.com/hook","event_types":["*"]}"#
            let refused = try await server.request("POST", "/api/v1/subscriptions", auth: .read, json: body)
            #expect(refused.status == 403, "\(refused)")
            #expect(refused.errorCode == "forbidden")
            #expect(try server.scalar("SELECT count(*) FROM outbox.subscriptions", as: Int64.self) == 0)
            let created = try await server.request("POST", "/api/v1/subscriptions", auth: .admin, json: body)
            #expect(created.status == 201, "\(created)")
            let used: Int64 = try server.scalar("SELECT count(*) FROM outbox.api_tokens WHERE last_used_at IS NOT NULL")
            #expect(used == 2)
        }
    }

    @Test("a GET is a read: last_used_at is written at most once a minute per token")
    func lastUsedAtIsThrottled() async throws {
        try await APITestServer.running { server in
            let sql = try server.database.connect()
            let lastUsed = "SELECT last_used_at::text FROM outbox.api_tokens WHERE name = 'reader'"
            #expect(try await server.request("GET", "/api/v1/subscriptions", auth: .read).status == 200)
            let first = try #require(try server.scalar(lastUsed, as: String?.self))
            // The row's version (xmin) shows whether anything wrote it, even an UPDATE to the same value.
            let version = "SELECT xmin::text FROM outbox.api_tokens WHERE name = 'reader'"
            let written: String = try server.scalar(version)
            for _ in 0..<3 { #expect(try await server.request("GET", "/api/v1/subscriptions", auth: .read).status == 200) }
            #expect(try server.scalar(lastUsed, as: String?.self) == first)
            #expect(try server.scalar(version, as: String.self) == written, "no request within the minute wrote the token row")
            // A minute later the next request records its use again.
            try sql.query("UPDATE outbox.api_tokens SET last_used_at = now() - interval '61 seconds' WHERE name = 'reader'")
            #expect(try await server.request("GET", "/api/v1/subscriptions", auth: .read).status == 200)
            #expect(try server.scalar("SELECT last_used_at > now() - interval '10 seconds' FROM outbox.api_tokens WHERE name = 'reader'",
                                      as: Bool.self))
        }
    }

    @Test("a revoked token is refused at once")
    func revoked() async throws {
        try await APITestServer.running { server in
            #expect(try await server.request("GET", "/api/v1/deliveries", auth: .read).status == 200)
            _ = try server.database.connect().query("UPDATE outbox.api_tokens SET revoked_at = now() WHERE name = 'reader'")
            let answer = try await server.request("GET", "/api/v1/deliveries", auth: .read)
            #expect(answer.status == 401)
        }
    }

    @Test("an unknown path is 404 with a JSON error")
    func unknownPath() async throws {
        try await APITestServer.running { server in
            let answer = try await server.request("GET", "/api/v1/nothing", auth: .read)
            #expect(answer.status == 404, "\(answer)")
            #expect(answer.errorCode == "not_found")
            #expect(answer.headers["content-type"]?.hasPrefix("application/json") == true)
        }
    }

    @Test("no CORS headers, even when an Origin is sent")
    func noCORS() async throws {
        try await APITestServer.running { server in
            let answer = try await server.request("GET", "/api/v1/subscriptions", auth: .read, headers: ["Origin": "https://evil.example"])
            #expect(answer.status == 200)
            #expect(!answer.headers.keys.contains { $0.hasPrefix("access-control-") })
        }
    }
}
