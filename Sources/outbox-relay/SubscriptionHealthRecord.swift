import Foundation
import OutboxSQL

/// One row of `outbox.subscription_health`, as `status` and `subscription show` print it.
struct SubscriptionHealthRecord {
    var subscription: String
    var enabled: Bool
    var disabledReason: String?
    var pending: Int64
    var delivering: Int64
    var succeeded: Int64
    var dead: Int64
    var oldestPendingAgeSeconds: Double?
    var lastSuccessAt: Date?
    var consecutiveFailures: Int64
    var circuitState: String

    /// Every subscription's health, by name; or only that of `name`.
    static func load(_ connection: Connection, name: String? = nil) throws -> [SubscriptionHealthRecord] {
        // The health view of SPEC §3, ages as seconds.
        let result = try connection.query("""
            SELECT h.subscription, h.enabled, h.disabled_reason, h.pending, h.delivering, h.succeeded, h.dead,
                   extract(epoch FROM h.oldest_pending_age) AS oldest_pending_age_seconds,
                   h.last_success_at, h.consecutive_failures, h.circuit_state
            FROM outbox.subscription_health AS h
            WHERE $1::text IS NULL OR h.subscription = $1
            ORDER BY h.subscription
            """, [name])
        return try result.rows.map { row in
            SubscriptionHealthRecord(
                subscription: try row.decode(String.self, at: 0),
                enabled: try row.decode(Bool.self, at: 1),
                disabledReason: try row.decode(String?.self, at: 2),
                pending: try row.decode(Int64.self, at: 3),
                delivering: try row.decode(Int64.self, at: 4),
                succeeded: try row.decode(Int64.self, at: 5),
                dead: try row.decode(Int64.self, at: 6),
                oldestPendingAgeSeconds: try row.decode(Double?.self, at: 7),
                lastSuccessAt: try row.decode(Date?.self, at: 8),
                consecutiveFailures: try row.decode(Int64.self, at: 9),
                circuitState: try row.decode(String.self, at: 10))
        }
    }

    /// The columns of `status`'s per-subscription table.
    static let columns = [
        "subscription", "enabled", "pending", "delivering", "succeeded", "dead",
        "oldest_pending_age_seconds", "last_success_at", "consecutive_failures", "circuit_state",
    ]

    /// The counters and endpoint state only, for `subscription show`.
    var counters: OutputRecord {
        OutputRecord([
            "pending": .integer(pending),
            "delivering": .integer(delivering),
            "succeeded": .integer(succeeded),
            "dead": .integer(dead),
            "oldest_pending_age_seconds": .age(oldestPendingAgeSeconds),
            "last_success_at": .timestamp(lastSuccessAt),
            "consecutive_failures": .integer(consecutiveFailures),
            "circuit_state": .text(circuitState),
        ])
    }

    var output: OutputRecord {
        var record = OutputRecord([
            "subscription": .text(subscription),
            "enabled": .boolean(enabled),
            "disabled_reason": OutputValue(disabledReason),
        ])
        record.append(counters)
        return record
    }
}
