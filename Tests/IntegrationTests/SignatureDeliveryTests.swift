import Foundation
import OutboxSQL
import Testing
import TestSupport

/// Every request the relay sends verifies with the official Standard Webhooks
/// library, also during a secret rotation, and carries SPEC §4's headers and body.
@Suite(.timeLimit(.minutes(2)))
struct SignatureDeliveryTests {
    static let oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let newSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

    @Test func requestsVerifyBeforeDuringAndAfterARotation() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "signed", receiver.url("/ok/before"), ["order.*"], secret: Self.oldSecret)
        try sql.query("""
            INSERT INTO outbox.events (event_type, payload, headers, event_id)
            VALUES ('order.created', '{"id": 42, "name": "Zoë 🚀"}', '{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}', 'evt-before')
            """)
        try await InProcessRelay.running(database: database) {
            _ = try await receiver.waitForRequests(count: 1, timeout: .seconds(10))
            // Rotation: the new secret signs, the previous one too until it expires.
            try sql.query("""
                UPDATE outbox.subscriptions
                SET previous_secret = secret, secret = $1, previous_secret_expires_at = now() + interval '1 hour',
                    url = replace(url, '/ok/before', '/ok/during')
                """, [Self.newSecret])
            try sql.query("SELECT outbox.publish('order.paid', '{\"id\": 42}'::jsonb, event_id => 'evt-during')")
            _ = try await receiver.waitForRequests(count: 2, timeout: .seconds(10))
            try sql.query("UPDATE outbox.subscriptions SET previous_secret_expires_at = now(), url = replace(url, '/ok/during', '/ok/after')")
            try sql.query("SELECT outbox.publish('order.paid', '{\"id\": 43}'::jsonb, event_id => 'evt-after')")
            _ = try await receiver.waitForRequests(count: 3, timeout: .seconds(10))
        }

        let before = try receiver.verifySignatures(secrets: [Self.oldSecret], pathPrefix: "/ok/before", expectSignatures: 1)
        #expect(before.ok, "\(before.output)")
        for secret in [Self.oldSecret, Self.newSecret] {
            let during = try receiver.verifySignatures(secrets: [secret], pathPrefix: "/ok/during", expectSignatures: 2)
            #expect(during.ok, "\(during.output)")
        }
        let after = try receiver.verifySignatures(secrets: [Self.newSecret], pathPrefix: "/ok/after", expectSignatures: 1)
        #expect(after.ok, "\(after.output)")
        let afterWithOld = try receiver.verifySignatures(secrets: [Self.oldSecret], pathPrefix: "/ok/after")
        #expect(!afterWithOld.ok, "an expired secret must no longer sign")
    }

    @Test func theRequestCarriesTheContractsHeadersAndBody() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "signed", receiver.url("/ok/shape"), ["order.*"], secret: Self.oldSecret)
        try sql.query("UPDATE outbox.subscriptions SET headers = '{\"x-tenant\": \"acme\"}'")
        try sql.query("""
            INSERT INTO outbox.events (event_type, payload, headers, event_id)
            VALUES ('order.created', '{"id": 42, "name": "Zoë 🚀"}', '{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}', 'evt-1')
            """)
        let createdAt = try database.scalar(
            "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM outbox.events", as: String.self)
        let request = try await InProcessRelay.running(database: database) {
            try await receiver.waitForRequests(count: 1, timeout: .seconds(10))[0]
        }
        #expect(request.method == "POST")
        #expect(request.headers["content-type"] == "application/json")
        #expect(request.headers["user-agent"]?.hasPrefix("outbox-relay/") == true)
        #expect(request.headers["webhook-id"] == "evt-1")
        let timestamp = try #require(request.headers["webhook-timestamp"].flatMap(Double.init))
        #expect(abs(timestamp - request.receivedAtMs / 1000) < 5)
        #expect(request.headers["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        #expect(request.headers["x-tenant"] == "acme")

        struct Envelope: Decodable, Equatable {
            struct Data: Decodable, Equatable { var id: Int; var name: String }
            var type: String
            var timestamp: String
            var data: Data
        }
        let envelope = try JSONDecoder().decode(Envelope.self, from: Data(request.body.utf8))
        #expect(envelope == Envelope(type: "order.created", timestamp: createdAt, data: .init(id: 42, name: "Zoë 🚀")))
        #expect(try receiver.verifySignatures(secrets: [Self.oldSecret], expectSignatures: 1).ok)
    }
}
