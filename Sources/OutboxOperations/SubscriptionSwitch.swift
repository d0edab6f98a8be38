import OutboxSQL

/// Enables or disables a subscription. Disabled: new events skip it and its
/// pending deliveries wait, not charged attempts. Enabled again: they resume,
/// and the breaker's clock restarts (trigger subscriptions_wake).
public struct SubscriptionSwitch: Sendable {
    public var subscription: String
    public var enabled: Bool
    /// Recorded as `disabled_reason` when disabling; cleared when enabling.
    public var reason: String?

    public static func enable(_ subscription: String) -> SubscriptionSwitch {
        SubscriptionSwitch(subscription: subscription, enabled: true, reason: nil)
    }

    public static func disable(_ subscription: String, reason: String) -> SubscriptionSwitch {
        SubscriptionSwitch(subscription: subscription, enabled: false, reason: reason)
    }

    /// The subscription as it is now.
    public func run(_ connection: Connection) throws -> SubscriptionListing.Record {
        try connection.withTransaction { connection in
            let result = try connection.query("""
                UPDATE outbox.subscriptions
                SET enabled = $2, disabled_reason = $3, updated_at = now()
                WHERE name = $1
                """, [subscription, enabled, enabled ? nil : reason])
            guard result.rowsAffected == 1 else { throw OperationError.noSubscription(subscription) }
            return try SubscriptionListing.one(connection, named: subscription)
        }
    }
}
