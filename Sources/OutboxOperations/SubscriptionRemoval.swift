import OutboxSQL

/// Deletes a subscription; the schema's trigger removes its unfinished
/// deliveries and its endpoint state. Its attempts stay in the history until
/// retention drops their partition.
public struct SubscriptionRemoval: Sendable {
    public var subscription: String

    public init(subscription: String) {
        self.subscription = subscription
    }

    /// How many deliveries that had not succeeded went with it.
    public func run(_ connection: Connection) throws -> Int64 {
        try connection.withTransaction { connection in
            let id = try connection.subscriptionID(named: subscription)
            let unfinished = try connection.query(
                "SELECT count(*) FROM outbox.deliveries WHERE subscription_id = $1 AND status <> 'succeeded'", [id]
            )[0].decode(Int64.self, at: 0)
            try connection.query("DELETE FROM outbox.subscriptions WHERE id = $1", [id])
            return unfinished
        }
    }
}
