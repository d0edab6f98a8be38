import Foundation
import OutboxRelay
import OutboxSQL

/// A subscription's settings as the operator commands print them. Never the
/// secret, URL credentials or credential-like header values: it reads
/// `outbox.redacted_subscriptions` (`outbox.redacted_url`/`redacted_headers`, as
/// the admin API does), which the `outbox_operator` role may read and the table's
/// secret columns it may not.
struct SubscriptionRecord {
    var name: String
    var url: String
    var eventTypes: [String]
    var enabled: Bool
    var disabledReason: String?
    var ordered: Bool
    var headers: [String: String]
    var timeout: Duration?
    var retrySchedule: [Duration]?
    var maxInFlight: Int?
    var rateLimit: Double?
    var hasPreviousSecret: Bool
    var previousSecretExpiresAt: Date?
    var createdAt: Date
    var updatedAt: Date

    /// Every subscription, by name; or only the one called `name`.
    static func load(_ connection: Connection, name: String? = nil) throws -> [SubscriptionRecord] {
        // The operator commands' view of outbox.subscriptions (intervals as seconds).
        let result = try connection.query("""
            SELECT s.name, s.url, s.event_types, s.enabled, s.disabled_reason, s.ordered, s.headers,
                   extract(epoch FROM s.timeout) AS timeout_seconds,
                   (SELECT array_agg(extract(epoch FROM r.step) ORDER BY r.position)
                    FROM unnest(s.retry_schedule) WITH ORDINALITY AS r(step, position)) AS retry_schedule_seconds,
                   s.max_in_flight, s.rate_limit,
                   s.has_previous_secret, s.previous_secret_expires_at,
                   s.created_at, s.updated_at
            FROM outbox.redacted_subscriptions AS s
            WHERE $1::text IS NULL OR s.name = $1
            ORDER BY s.name
            """, [name])
        return try result.rows.map { row in
            SubscriptionRecord(
                name: try row.decode(String.self, at: 0),
                url: try row.decode(String.self, at: 1),
                eventTypes: try row.decode([String].self, at: 2),
                enabled: try row.decode(Bool.self, at: 3),
                disabledReason: try row.decode(String?.self, at: 4),
                ordered: try row.decode(Bool.self, at: 5),
                headers: try row.decode(PostgresJSON.self, at: 6).decode(as: [String: String].self),
                timeout: try row.decode(Double?.self, at: 7).map(Self.duration(seconds:)),
                retrySchedule: try row.decode([Double]?.self, at: 8).map { $0.map(Self.duration(seconds:)) },
                maxInFlight: try row.decode(Int?.self, at: 9),
                rateLimit: try row.decode(Double?.self, at: 10),
                hasPreviousSecret: try row.decode(Bool.self, at: 11),
                previousSecretExpiresAt: try row.decode(Date?.self, at: 12),
                createdAt: try row.decode(Date.self, at: 13),
                updatedAt: try row.decode(Date.self, at: 14))
        }
    }

    /// The subscription called `name`, or `OperatorError.noSubscription`.
    static func load(_ connection: Connection, named name: String) throws -> SubscriptionRecord {
        guard let record = try load(connection, name: name).first else { throw OperatorError.noSubscription(name) }
        return record
    }

    private static func duration(seconds: Double) -> Duration {
        .microseconds(Int64((seconds * 1_000_000).rounded()))
    }

    /// The columns `subscription list` shows in its table.
    static let listColumns = ["name", "enabled", "ordered", "url", "event_types", "disabled_reason"]

    var output: OutputRecord {
        OutputRecord([
            "name": .text(name),
            "url": .text(url),
            "event_types": .list(eventTypes),
            "enabled": .boolean(enabled),
            "disabled_reason": OutputValue(disabledReason),
            "ordered": .boolean(ordered),
            "headers": .object(headers),
            "timeout": .setting(timeout),
            "retry_schedule": retrySchedule.map { .list($0.map(DurationText.format)) } ?? .absent(shown: "default"),
            "max_in_flight": maxInFlight.map { .integer(Int64($0)) } ?? .absent(shown: "default"),
            "rate_limit": rateLimit.map(OutputValue.number) ?? .absent(shown: "default"),
            "secret": .text("whsec_…"),
            "previous_secret": hasPreviousSecret ? .text("whsec_…") : .null,
            "previous_secret_expires_at": .timestamp(previousSecretExpiresAt),
            "created_at": .timestamp(createdAt),
            "updated_at": .timestamp(updatedAt),
        ])
    }
}
