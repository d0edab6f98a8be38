import Foundation
import Hummingbird
import OutboxOperations
import OutboxSQL

/// `/api/v1/deliveries` (filtered, cursor-paginated, newest first), one delivery
/// with its event and attempts; replays of one delivery or of dead letters, and
/// purges of dead letters, through the operations the CLI calls too.
struct APIDeliveries: Sendable {
    let database: DatabaseClient

    static let statuses: Set<String> = ["pending", "delivering", "succeeded", "dead"]

    /// One delivery as JSON (aliases d = deliveries, s = subscriptions, e = events).
    static let deliveryJSON = """
        json_build_object(
            'id', d.id,
            'event_id', d.event_id,
            'subscription', s.name,
            'event_type', e.event_type,
            'status', d.status,
            'attempts', d.attempts,
            'next_attempt_at', d.next_attempt_at,
            'last_status_code', d.last_status_code,
            'last_error', d.last_error,
            'created_at', d.created_at,
            'completed_at', d.completed_at)
        """
    static let joins = """
        FROM outbox.deliveries AS d
        LEFT JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
        LEFT JOIN outbox.events AS e ON e.id = d.event_seq
        """

    func register(on routes: APIRoutes) {
        let database = self.database
        routes.add(.get, "/api/v1/deliveries") { request, _ in
            let query = try APIQuery(request, allowed: ["status", "subscription", "event_type", "event_id", "since", "until", "limit", "cursor"])
            let status = query["status"]
            if let status, !Self.statuses.contains(status) {
                throw APIError.badRequest("status must be one of pending, delivering, succeeded, dead")
            }
            let limit = try query.integer("limit", in: 1...500) ?? 50
            let before = try query["cursor"].map(DeliveryCursor.decode)
            let since = try query.timestamp("since"), until = try query.timestamp("until")
            let parameters: [any PostgresEncodable] = [
                status, query["subscription"], query["event_type"], query["event_id"], since, until, before, limit + 1,
            ]
            let page = try await database.run { connection in
                try connection.query("""
                    SELECT d.id, (\(Self.deliveryJSON))::text
                    \(Self.joins)
                    WHERE d.id IS NOT NULL
                      AND ($1::text IS NULL OR d.status = $1)
                      AND ($2::text IS NULL OR s.name = $2)
                      AND ($3::text IS NULL OR e.event_type = $3)
                      AND ($4::text IS NULL OR d.event_id = $4)
                      AND ($5::timestamptz IS NULL OR d.created_at >= $5)
                      AND ($6::timestamptz IS NULL OR d.created_at < $6)
                      AND ($7::bigint IS NULL OR d.id < $7)
                    ORDER BY d.id DESC
                    LIMIT $8
                    """, parameters).rows.map { (id: try $0.decode(Int64.self, at: 0), json: try $0.decode(String.self, at: 1)) }
            }
            let shown = page.prefix(limit)
            let next = page.count > limit ? shown.last.map { "\"\(DeliveryCursor.encode($0.id))\"" } ?? "null" : "null"
            return APIResponse.json(.ok, text: "{\"deliveries\":[\(shown.map(\.json).joined(separator: ","))],\"next_cursor\":\(next)}")
        }
        routes.add(.get, "/api/v1/deliveries/:id") { _, context in
            let id = try Self.deliveryID(context)
            return APIResponse.json(.ok, text: try await Self.detail(id, database))
        }
        routes.add(.post, "/api/v1/deliveries/:id/replay") { _, context in
            let replay = DeliveryReplay(delivery: try Self.deliveryID(context))
            _ = try await database.run(replay.run)
            return APIResponse.json(.ok, text: try await Self.detail(replay.delivery, database))
        }
        routes.add(.post, "/api/v1/dead-letters/replay") { request, _ in
            let body = try await APIRequestBody.read(&request, allowed: ["subscription", "since", "until"])
            let replay = DeadLetterReplay(
                subscription: try body.string("subscription"),
                since: try body.string("since").map { try APIQuery.parseTimestamp($0, field: "since") },
                until: try body.string("until").map { try APIQuery.parseTimestamp($0, field: "until") })
            let replayed = try await database.run(replay.run)
            return try APIResponse.json(.ok, encoding: ["replayed": replayed])
        }
        routes.add(.post, "/api/v1/dead-letters/purge") { request, _ in
            let body = try await APIRequestBody.read(&request, allowed: ["subscription", "older_than"])
            // older_than is required, as the CLI's --older-than: nothing is purged by accident.
            let purge = DeadLetterPurge(
                subscription: try body.string("subscription"), olderThan: try body.seconds("older_than", required: true)!)
            let purged = try await database.run(purge.run)
            return try APIResponse.json(.ok, encoding: ["purged": purged])
        }
    }

    static func deliveryID(_ context: BasicRequestContext) throws -> Int64 {
        guard let id = Int64(try context.parameter("id")), id > 0 else {
            throw APIError.badRequest("a delivery id is a positive whole number")
        }
        return id
    }

    /// One delivery with its event and every attempt.
    static func detail(_ id: Int64, _ database: DatabaseClient) async throws -> String {
        let rows = try await database.run { connection in
            try connection.query("""
                SELECT (\(deliveryJSON)::jsonb || jsonb_build_object(
                    'event', CASE WHEN e.id IS NULL THEN NULL ELSE \(APIEvents.eventJSON) END,
                    'attempt_history', (
                        SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'attempt', a.attempt,
                            'started_at', a.started_at,
                            'duration_ms', a.duration_ms,
                            'status_code', a.status_code,
                            'error', a.error,
                            'response_excerpt', a.response_excerpt) ORDER BY a.attempt, a.id), '[]'::jsonb)
                        FROM outbox.attempts AS a
                        WHERE a.delivery_id = d.id)))::text
                \(joins)
                WHERE d.id = $1
                """, [id]).rows.map { try $0.decode(String.self, at: 0) }
        }
        guard let text = rows.first else { throw APIError.notFound("no delivery has id \(id)") }
        return text
    }
}

/// The opaque page cursor of `GET /api/v1/deliveries`: base64url of `d:<id>`.
enum DeliveryCursor {
    static func encode(_ id: Int64) -> String {
        Data("d:\(id)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) throws -> Int64 {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let plain = String(data: data, encoding: .utf8),
              plain.hasPrefix("d:"), let id = Int64(plain.dropFirst(2)), id > 0
        else { throw APIError(.badRequest, "bad_cursor", "the cursor is not one this API returned") }
        return id
    }
}

/// The query string of a request, checked: unknown parameters are refused.
struct APIQuery {
    let values: [String: String]

    init(_ request: Request, allowed: Set<String>) throws {
        var values: [String: String] = [:]
        for (key, value) in request.uri.queryParameters {
            let key = String(key)
            guard allowed.contains(key) else {
                throw APIError.badRequest("unknown query parameter \"\(key)\"; allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            values[key] = String(value)
        }
        self.values = values
    }

    subscript(_ key: String) -> String? { values[key] }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = values[key] else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw APIError.badRequest("\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    func timestamp(_ key: String) throws -> Date? {
        try values[key].map { try Self.parseTimestamp($0, field: key) }
    }

    /// An RFC 3339 timestamp, with or without fractional seconds.
    static func parseTimestamp(_ text: String, field: String) throws -> Date {
        guard let date = TimestampText.parse(text) else {
            throw APIError.badRequest("\(field) must be \(TimestampText.example)")
        }
        return date
    }
}
