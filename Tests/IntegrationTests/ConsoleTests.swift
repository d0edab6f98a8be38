import Foundation
import Testing

/// The console's static files and the token endpoint it logs in with (the
/// browser itself is driven in ConsoleBrowserTests).
@Suite("Console: served files and login endpoint")
struct ConsoleTests {
    @Test("the page, script and stylesheet are served without a token, under a strict Content-Security-Policy")
    func assets() async throws {
        try await APITestServer.running { server in
            let page = try await server.request("GET", "/console", auth: .none)
            #expect(page.status == 200, "\(page)")
            #expect(page.headers["content-type"]?.hasPrefix("text/html") == true)
            #expect(page.text.contains(#"<script src="/console/console.js" defer></script>"#))
            let policy = try #require(page.headers["content-security-policy"])
            for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
                #expect(policy.contains(directive), "\(policy)")
            }
            #expect(!policy.contains("unsafe"), "\(policy)")
            #expect(page.headers["x-content-type-options"] == "nosniff")

            let script = try await server.request("GET", "/console/console.js", auth: .none)
            #expect(script.status == 200)
            #expect(script.headers["content-type"]?.hasPrefix("text/javascript") == true)
            // Attacker-controlled text (payloads, errors, excerpts) must only ever become text nodes.
            for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
                #expect(!script.text.contains(sink), "console.js uses \(sink)")
            }
            let style = try await server.request("GET", "/console/console.css", auth: .none)
            #expect(style.status == 200 && style.headers["content-type"]?.hasPrefix("text/css") == true)

            let root = try await server.request("GET", "/", auth: .none)
            #expect(root.status == 200 && root.text == page.text, "/ leads to the console")
            let missing = try await server.request("GET", "/console/secrets.txt", auth: .none)
            #expect(missing.status == 404 && missing.errorCode == "not_found", "\(missing)")
        }
    }

    @Test("GET /api/v1/token names the bearer and its scope; without a valid token it is 401")
    func token() async throws {
        try await APITestServer.running { server in
            let read = try await server.request("GET", "/api/v1/token", auth: .read)
            #expect(read.status == 200, "\(read)")
            #expect(try read.json() as? [String: String] == ["name": "reader", "scope": "read"])
            let admin = try await server.request("GET", "/api/v1/token", auth: .admin)
            #expect(try admin.json() as? [String: String] == ["name": "operator", "scope": "admin"])
            #expect(try await server.request("GET", "/api/v1/token", auth: .none).status == 401)
            #expect(try await server.request("GET", "/api/v1/token", auth: .custom("Bearer \(server.adminToken)x")).status == 401)
            _ = try server.scalar("UPDATE outbox.api_tokens SET revoked_at = now() WHERE name = 'operator' RETURNING 1", as: Int.self)
            #expect(try await server.request("GET", "/api/v1/token", auth: .admin).status == 401, "a revoked token cannot log in")
        }
    }
}
