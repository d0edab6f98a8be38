import OutboxOperations

/// A subscription's health as `status` and `subscription show` print it.
extension SubscriptionHealth {
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
