import OutboxOperations
import OutboxRelay

/// A subscription as the operator commands print it, from `SubscriptionListing`:
/// never the secret, URL credentials or credential-like header values.
extension SubscriptionListing.Record {
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
