import OutboxSQL

/// The backlog over all subscriptions: the sums of `outbox.backlog`
/// (sql/0015_operations.sql), the one definition `status`, the admin API's stats
/// and `outbox.subscription_health` share.
public struct BacklogTotals: Sendable, Equatable {
    public var pending: Int64
    /// Of the pending, those whose next attempt is due now.
    public var due: Int64
    public var delivering: Int64
    public var dead: Int64
    public var oldestPendingAgeSeconds: Double?
    /// How long the longest-waiting due delivery has waited past its due time.
    public var dueLagSeconds: Double?

    public static func load(_ connection: Connection) throws -> BacklogTotals {
        let row = try connection.query("""
            SELECT coalesce(sum(b.pending), 0)::bigint    AS pending,
                   coalesce(sum(b.due), 0)::bigint        AS due,
                   coalesce(sum(b.delivering), 0)::bigint AS delivering,
                   coalesce(sum(b.dead), 0)::bigint       AS dead,
                   extract(epoch FROM max(b.oldest_pending_age))::float8 AS oldest_pending_age_seconds,
                   extract(epoch FROM max(b.due_lag))::float8            AS due_lag_seconds
            FROM outbox.backlog AS b
            """)[0]
        return BacklogTotals(
            pending: try row.decode(Int64.self, named: "pending"),
            due: try row.decode(Int64.self, named: "due"),
            delivering: try row.decode(Int64.self, named: "delivering"),
            dead: try row.decode(Int64.self, named: "dead"),
            oldestPendingAgeSeconds: try row.decode(Double?.self, named: "oldest_pending_age_seconds"),
            dueLagSeconds: try row.decode(Double?.self, named: "due_lag_seconds"))
    }
}
