import Foundation
import OutboxSQL

/// One row of `outbox.subscription_health` (SPEC §3; its counts come from
/// `outbox.backlog`): what `status` and `subscription show` print.
public struct SubscriptionHealth: Sendable {
    public var subscription: String
    public var enabled: Bool
    public var disabledReason: String?
    public var pending: Int64
    public var delivering: Int64
    public var succeeded: Int64
    public var dead: Int64
    public var oldestPendingAgeSeconds: Double?
    public var lastSuccessAt: Date?
    public var consecutiveFailures: Int64
    public var circuitState: String

    /// Every subscription's health, by name; or only that of `name`.
    public static func load(_ connection: Connection, name: String? = nil) throws -> [SubscriptionHealth] {
        let result = try connection.query("""
            SELECT h.subscription, h.enabled, h.disabled_reason, h.pending, h.delivering, h.succeeded, h.dead,
                   extract(epoch FROM h.oldest_pending_age) AS oldest_pending_age_seconds,
                   h.last_success_at, h.consecutive_failures, h.circuit_state
            FROM outbox.subscription_health AS h
            WHERE $1::text IS NULL OR h.subscription = $1
            ORDER BY h.subscription
            """, [name])
        return try result.rows.map { row in
            SubscriptionHealth(
                subscription: try row.decode(String.self, named: "subscription"),
                enabled: try row.decode(Bool.self, named: "enabled"),
                disabledReason: try row.decode(String?.self, named: "disabled_reason"),
                pending: try row.decode(Int64.self, named: "pending"),
                delivering: try row.decode(Int64.self, named: "delivering"),
                succeeded: try row.decode(Int64.self, named: "succeeded"),
                dead: try row.decode(Int64.self, named: "dead"),
                oldestPendingAgeSeconds: try row.decode(Double?.self, named: "oldest_pending_age_seconds"),
                lastSuccessAt: try row.decode(Date?.self, named: "last_success_at"),
                consecutiveFailures: try row.decode(Int64.self, named: "consecutive_failures"),
                circuitState: try row.decode(String.self, named: "circuit_state"))
        }
    }
}
