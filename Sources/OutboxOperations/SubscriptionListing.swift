import Foundation
import OutboxSQL

/// Subscriptions as every surface shows them: read from `outbox.subscription_settings`
/// (sql/0015_operations.sql), which has no secret column, the URL without its
/// userinfo and credential-like header values hidden. The CLI takes the typed
/// records, the admin API (and so the console) the JSON; both come from that view.
public enum SubscriptionListing {
    /// One subscription's settings. Unset settings (nil) mean the relay's global default.
    public struct Record: Sendable {
        public var name: String
        public var url: String
        public var eventTypes: [String]
        public var enabled: Bool
        public var disabledReason: String?
        public var ordered: Bool
        public var headers: [String: String]
        public var timeout: Duration?
        public var retrySchedule: [Duration]?
        public var maxInFlight: Int?
        public var rateLimit: Double?
        public var hasPreviousSecret: Bool
        public var previousSecretExpiresAt: Date?
        public var createdAt: Date
        public var updatedAt: Date
    }

    /// Every subscription, by name.
    public static func all(_ connection: Connection) throws -> [Record] {
        try load(connection, name: nil)
    }

    /// The subscription called `name`, or `OperationError.noSubscription`.
    public static func one(_ connection: Connection, named name: String) throws -> Record {
        guard let record = try load(connection, name: name).first else { throw OperationError.noSubscription(name) }
        return record
    }

    private static func load(_ connection: Connection, name: String?) throws -> [Record] {
        // Intervals as seconds, the retry schedule in its order.
        let result = try connection.query("""
            SELECT s.name, s.url, s.event_types, s.enabled, s.disabled_reason, s.ordered, s.headers,
                   extract(epoch FROM s.timeout) AS timeout_seconds,
                   (SELECT array_agg(extract(epoch FROM r.step) ORDER BY r.position)
                    FROM unnest(s.retry_schedule) WITH ORDINALITY AS r(step, position)) AS retry_schedule_seconds,
                   s.max_in_flight, s.rate_limit, s.has_previous_secret, s.previous_secret_expires_at,
                   s.created_at, s.updated_at
            FROM outbox.subscription_settings AS s
            WHERE $1::text IS NULL OR s.name = $1
            ORDER BY s.name
            """, [name])
        return try result.rows.map { row in
            Record(
                name: try row.decode(String.self, named: "name"),
                url: try row.decode(String.self, named: "url"),
                eventTypes: try row.decode([String].self, named: "event_types"),
                enabled: try row.decode(Bool.self, named: "enabled"),
                disabledReason: try row.decode(String?.self, named: "disabled_reason"),
                ordered: try row.decode(Bool.self, named: "ordered"),
                headers: try row.decode(PostgresJSON.self, named: "headers").decode(as: [String: String].self),
                timeout: try row.decode(Double?.self, named: "timeout_seconds").map(duration(seconds:)),
                retrySchedule: try row.decode([Double]?.self, named: "retry_schedule_seconds").map { $0.map(duration(seconds:)) },
                maxInFlight: try row.decode(Int?.self, named: "max_in_flight"),
                rateLimit: try row.decode(Double?.self, named: "rate_limit"),
                hasPreviousSecret: try row.decode(Bool.self, named: "has_previous_secret"),
                previousSecretExpiresAt: try row.decode(Date?.self, named: "previous_secret_expires_at"),
                createdAt: try row.decode(Date.self, named: "created_at"),
                updatedAt: try row.decode(Date.self, named: "updated_at"))
        }
    }

    private static func duration(seconds: Double) -> Duration {
        .microseconds(Int64((seconds * 1_000_000).rounded()))
    }

    /// One subscription as a JSON object, over `outbox.subscription_settings AS s`.
    /// Settings in seconds (null = the global default).
    public static let jsonObject = """
        json_build_object(
            'name', s.name,
            'url', s.url,
            'event_types', s.event_types,
            'enabled', s.enabled,
            'disabled_reason', s.disabled_reason,
            'ordered', s.ordered,
            'headers', s.headers,
            'settings', json_build_object(
                'timeout', extract(epoch FROM s.timeout)::float8,
                'retry_schedule', (SELECT json_agg(extract(epoch FROM step)::float8) FROM unnest(s.retry_schedule) AS step),
                'max_in_flight', s.max_in_flight,
                'rate_limit', s.rate_limit::float8),
            'created_at', s.created_at,
            'updated_at', s.updated_at)
        """

    /// `{"subscriptions": [...]}`, by name.
    public static func allJSON(_ connection: Connection) throws -> String {
        try connection.query("""
            SELECT json_build_object('subscriptions', coalesce(json_agg(\(jsonObject) ORDER BY s.name), '[]'))::text
            FROM outbox.subscription_settings AS s
            """)[0].decode(String.self, at: 0)
    }

    /// The subscription called `name` as a JSON object, or `OperationError.noSubscription`.
    public static func oneJSON(_ connection: Connection, named name: String) throws -> String {
        let rows = try connection.query(
            "SELECT (\(jsonObject))::text FROM outbox.subscription_settings AS s WHERE s.name = $1", [name])
        guard rows.count == 1 else { throw OperationError.noSubscription(name) }
        return try rows[0].decode(String.self, at: 0)
    }
}
