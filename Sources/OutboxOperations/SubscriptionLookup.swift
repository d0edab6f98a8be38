import OutboxSQL

extension Connection {
    /// The id of the subscription called `name`, or `OperationError.noSubscription`.
    public func subscriptionID(named name: String) throws -> Int64 {
        let result = try query("SELECT id FROM outbox.subscriptions WHERE name = $1", [name])
        guard result.count == 1 else { throw OperationError.noSubscription(name) }
        return try result[0].decode(Int64.self, at: 0)
    }
}
