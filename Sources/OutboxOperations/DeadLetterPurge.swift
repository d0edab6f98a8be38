import Foundation
import OutboxSQL

/// Deletes dead letters that died longer ago than `olderThan`, optionally of one
/// subscription (`outbox.purge_dead_letters`). Their attempts stay in the history
/// until retention drops their partition. Used by `deliveries purge --dead` and
/// `POST /api/v1/dead-letters/purge`.
public struct DeadLetterPurge: Sendable {
    public var subscription: String?
    /// Only those dead for longer than this; zero purges every dead letter.
    public var olderThan: Duration

    public init(subscription: String? = nil, olderThan: Duration) {
        self.subscription = subscription
        self.olderThan = olderThan
    }

    /// How many were deleted.
    public func run(_ connection: Connection) throws -> Int64 {
        guard olderThan >= .zero else {
            throw OperationError(.invalid, "older-than must be zero or more, e.g. 30d (0s purges every dead letter)")
        }
        let subscriptionID = try subscription.map { try connection.subscriptionID(named: $0) }
        return try connection.query(
            "SELECT outbox.purge_dead_letters(subscription_id => $1, before => now() - $2::interval)",
            [subscriptionID, olderThan]
        )[0].decode(Int64.self, at: 0)
    }
}
