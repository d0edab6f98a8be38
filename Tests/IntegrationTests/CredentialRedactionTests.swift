import Foundation
import OutboxSQL
import Testing
import TestSupport

/// URL userinfo and credential-like static header values are write-only (SPEC
/// §10): no surface shows them to any scope, while deliveries still carry them.
/// (A drift between the CLI's and the API's copies of this rule leaked them.)
@Suite(.timeLimit(.minutes(2)))
struct CredentialRedactionTests {
    static let password = "pa55-w0rd-url"
    static let bearer = "Bearer tok-3x4mpl3"
    static let apiKey = "k3y-v4lu3"
    /// What no surface may show.
    static let credentials = [password, bearer, apiKey]

    /// A subscription named `guarded` to `url`, with userinfo in its URL and two credential headers.
    static func subscribe(_ sql: Connection, url: String) throws {
        let guarded = url.replacingOccurrences(of: "://", with: "://operator:\(password)@")
        try sql.query("""
            INSERT INTO outbox.subscriptions (name, url, event_types, secret, headers)
            VALUES ('guarded', $1, '{*}', outbox.generate_secret(),
                    jsonb_build_object('authorization', $2::text, 'x-api-key', $3::text, 'x-team', 'shop'))
            """, [guarded, bearer, apiKey])
    }

    func expectNoCredential(_ text: String, _ surface: String) {
        for credential in Self.credentials {
            #expect(!text.contains(credential), "\(surface) shows \(credential): \(text)")
        }
    }

    @Test func theCLIAndTheAPIShowNeitherTheURLPasswordNorCredentialHeaders() async throws {
        try await APITestServer.running { server in
            try Self.subscribe(try server.database.connect(), url: "https://hooks.example.com/in")
            for arguments in [["subscription", "list"], ["subscription", "list", "--json"],
                              ["subscription", "show", "guarded"], ["subscription", "show", "guarded", "--json"]] {
                let run = try await CLI.run(arguments, database: server.database)
                #expect(run.status == 0, "\(run)")
                expectNoCredential(run.stdout + run.stderr, arguments.joined(separator: " "))
            }
            let shown = try await CLI.run(["subscription", "show", "guarded", "--json"], database: server.database).jsonObject()
            #expect(shown["url"] as? String == "https://[redacted]@hooks.example.com/in")
            #expect((shown["headers"] as? [String: String])?["x-team"] == "shop", "other headers stay visible")
            for auth in [APITestServer.Auth.read, .admin] {
                for path in ["/api/v1/subscriptions", "/api/v1/subscriptions/guarded"] {
                    let answer = try await server.request("GET", path, auth: auth)
                    #expect(answer.status == 200, "\(answer)")
                    expectNoCredential(answer.text, "GET \(path) as \(auth)")
                }
            }
            let api = try await server.request("GET", "/api/v1/subscriptions/guarded", auth: .read).json()
            #expect(api["url"] as? String == "https://[redacted]@hooks.example.com/in")
            #expect((api["headers"] as? [String: String])?["authorization"] == "[redacted]")
        }
    }

    @Test func deliveriesStillCarryTheCredentialHeaders() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try Self.subscribe(sql, url: receiver.url("/ok/guarded"))
        try await InProcessRelay.running(database: database) {
            try sql.query("SELECT outbox.publish('order.created', '{}')")
            let request = try await receiver.waitForRequests(count: 1, timeout: .seconds(10))[0]
            #expect(request.headers["x-api-key"] == Self.apiKey)
            #expect(request.headers["authorization"] == Self.bearer)
        }
    }
}
