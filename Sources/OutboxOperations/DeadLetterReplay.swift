import Foundation
import OutboxSQL

/// Sends dead letters again with a fresh retry schedule, optionally of one
/// subscription and dead within [since, until). Used by `replay --dead` and
/// `POST /api/v1/dead-letters/replay`.
public struct DeadLetterReplay: Sendable {
    /// Dead letters replayed per statement: each batch commits on its own, so locks stay short.
    public static let batchSize = 500

    public var subscription: String?
    public var since: Date?
    public var until: Date?

    public init(subscription: String? = nil, since: Date? = nil, until: Date? = nil) {
        self.subscription = subscription
        self.since = since
        self.until = until
    }

    /// How many were replayed. Call outside a transaction, so each batch commits.
    public func run(_ connection: Connection) throws -> Int64 {
        let subscriptionID = try subscription.map { try connection.subscriptionID(named: $0) }
        // outbox.replay_dead_letters returns the ids it replayed, in order: the last is the next cursor.
        var after: Int64 = 0, total: Int64 = 0
        while true {
            let ids = try connection.query(
                "SELECT outbox.replay_dead_letters($1, $2, $3, $4, $5)",
                [after, Self.batchSize, subscriptionID, since, until]
            ).rows.map { try $0.decode(Int64.self, at: 0) }
            total += Int64(ids.count)
            guard ids.count == Self.batchSize, let last = ids.last else { return total }
            after = last
        }
    }
}
