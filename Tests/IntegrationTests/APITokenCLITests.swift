import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import OutboxAdmin
import OutboxRelay
import Testing
import TestSupport

/// `outbox-relay token create|list|revoke`, and `run` with OUTBOX_API_LISTEN
/// serving the API to a token made that way.
@Suite("Admin API: token CLI and the run command")
struct APITokenCLITests {
    @Test("token create prints the token once, stores only its hash; list never shows it; revoke stops it")
    func tokenLifecycle() async throws {
        let database = try TestDatabase()
        let created = try await CLI.run(["token", "create", "ci", "--scope", "admin", "--json"], database: database)
        #expect(created.status == 0, "\(created)")
        let token = try #require(try created.jsonObject()["token"] as? String)
        #expect(token.hasPrefix("obx_"))
        #expect(try database.scalar("SELECT token_hash FROM outbox.api_tokens WHERE name = 'ci'", as: String.self) == APIToken.hash(token))

        let duplicate = try await CLI.run(["token", "create", "ci"], database: database)
        #expect(duplicate.status != 0)
        let badScope = try await CLI.run(["token", "create", "x", "--scope", "root"], database: database)
        #expect(badScope.status != 0)
        #expect(badScope.stderr.contains("read or admin"))

        let list = try await CLI.run(["token", "list", "--json"], database: database)
        #expect(list.status == 0)
        #expect(!list.stdout.contains(token) && !list.stdout.contains(APIToken.hash(token)))
        #expect(try list.jsonArray().map { $0["name"] as? String } == ["ci"])

        #expect(try await CLI.run(["token", "revoke", "ci"], database: database).status == 0)
        #expect(try await CLI.run(["token", "revoke", "nope"], database: database).status != 0)
        let revoked: Int64 = try database.scalar("SELECT count(*) FROM outbox.api_tokens WHERE revoked_at IS NOT NULL")
        #expect(revoked == 1)
    }

    @Test("run serves the API on OUTBOX_API_LISTEN to a CLI-made token")
    func runServesAPI() async throws {
        let database = try TestDatabase()
        let created = try await CLI.run(["token", "create", "reader", "--scope", "read", "--json"], database: database)
        let token = try #require(try created.jsonObject()["token"] as? String)
        let relay = try RelayProcess(database: database, environment: ["OUTBOX_API_LISTEN": "127.0.0.1:0"])
        let apiPort = try await relay.apiPort()
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(apiPort)/api/v1/subscriptions")))
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession(configuration: .ephemeral).data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 200, "\(String(decoding: data, as: UTF8.self))")
        _ = try await relay.terminate(within: .seconds(20))
    }
}
