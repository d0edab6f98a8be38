import Hummingbird
import OutboxSQL

/// `POST /api/v1/events`: publish an event. `Idempotency-Key` becomes the
/// event_id: 202 on first use, 200 with the same event on an exact repeat, 409
/// when the key was used with a different event.
struct APIEvents: Sendable {
    let database: DatabaseClient

    /// One event as JSON (alias e = events).
    static let eventJSON = """
        jsonb_build_object(
            'event_id', e.event_id,
            'event_type', e.event_type,
            'payload', e.payload,
            'ordering_key', e.ordering_key,
            'headers', e.headers,
            'created_at', e.created_at)
        """

    func register(on routes: APIRoutes) {
        let database = self.database
        routes.add(.post, "/api/v1/events") { request, _ in
            let key = request.headers.first { $0.name.canonicalName == "idempotency-key" }?.value
            let body = try await APIRequestBody.read(&request, allowed: ["event_type", "payload", "ordering_key", "headers"])
            let eventType = try body.string("event_type", required: true)!
            guard body.has("payload") else { throw APIError.badRequest("field \"payload\" is required (any JSON value)") }
            let orderingKey = try body.string("ordering_key")
            try body.checkObject("headers")
            if let key, key.isEmpty || key.count > 255 {
                throw APIError.badRequest("Idempotency-Key must be 1 to 255 characters")
            }
            let result = try await database.run { connection -> (created: Bool, same: Bool, json: String) in
                // The key was used before: the same request gets the same answer.
                func published() throws -> (created: Bool, same: Bool, json: String)? {
                    guard let key else { return nil }
                    let existing = try connection.query("""
                        SELECT (\(Self.eventJSON))::text,
                               e.event_type = $2
                               AND e.payload = $1::jsonb -> 'payload'
                               AND e.ordering_key IS NOT DISTINCT FROM $3
                               AND e.headers IS NOT DISTINCT FROM nullif($1::jsonb -> 'headers', 'null'::jsonb)
                        FROM outbox.events AS e
                        WHERE e.event_id = $4
                        """, [body.json, eventType, orderingKey, key])
                    guard existing.count == 1 else { return nil }
                    return (false, try existing[0].decode(Bool.self, at: 1), try existing[0].decode(String.self, at: 0))
                }
                if let earlier = try published() { return earlier }
                do {
                    let inserted = try connection.query("""
                        INSERT INTO outbox.events AS e (event_type, payload, ordering_key, headers, event_id)
                        VALUES ($2, $1::jsonb -> 'payload', $3, nullif($1::jsonb -> 'headers', 'null'::jsonb), $4)
                        RETURNING (\(Self.eventJSON))::text
                        """, [body.json, eventType, orderingKey, key])
                    return (true, true, try inserted[0].decode(String.self, at: 0))
                } catch let error as PostgresError where error.sqlState == "23505" {
                    // The same key, published at the same moment by another request.
                    guard let earlier = try published() else { throw error }
                    return earlier
                }
            }
            guard result.same else {
                throw APIError(.conflict, "idempotency_conflict", "Idempotency-Key \(key ?? "") was already used with a different event")
            }
            return APIResponse.json(result.created ? .accepted : .ok, text: result.json)
        }
    }
}
