import Foundation
import OutboxSQL

/// Replaces a subscription's signing secret (`outbox.rotate_secret`,
/// sql/0015_operations.sql): the new one signs from now on, the old one keeps
/// signing too until the grace period ends, so receivers switch over without
/// rejecting a request. Used by `subscription rotate-secret` and
/// `POST /api/v1/subscriptions/{name}/rotate-secret`.
public struct SubscriptionRotation: Sendable {
    /// How long the old secret signs when no grace is given.
    public static let defaultGrace: Duration = .seconds(86_400)

    public var subscription: String
    /// The new secret (`whsec_…`); generated when nil.
    public var secret: String?
    public var grace: Duration

    public init(subscription: String, secret: String? = nil, grace: Duration = defaultGrace) {
        self.subscription = subscription
        self.secret = secret
        self.grace = grace
    }

    /// The new secret, shown this once, and when the previous one stops signing.
    public struct Result: Sendable {
        public let secret: String
        public let previousSecretExpiresAt: Date
    }

    public func run(_ connection: Connection) throws -> Result {
        guard grace >= .zero else {
            throw OperationError(.invalid, "the grace period must be zero or more, e.g. 24h")
        }
        let rows = try connection.query(
            "SELECT secret, previous_secret_expires_at FROM outbox.rotate_secret($1, $2, $3::interval)",
            [subscription, secret, grace])
        guard rows.count == 1 else { throw OperationError.noSubscription(subscription) }
        return Result(secret: try rows[0].decode(String.self, at: 0),
                      previousSecretExpiresAt: try rows[0].decode(Date.self, at: 1))
    }
}
