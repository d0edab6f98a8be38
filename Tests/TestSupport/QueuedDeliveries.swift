import OutboxSQL

/// Deliveries the relay has not reached yet exist only as `outbox.deliveries` rows
/// computed from the events (id NULL). A test that shapes deliveries with SQL
/// first stores them as pending rows of `outbox.delivery_queue`, as the relay's
/// claim of an ordered subscription does (`outbox.queue_new_events`).
public enum QueuedDeliveries {
    /// Stores every enabled subscription's unread events; returns how many.
    @discardableResult
    public static func store(_ sql: Connection) throws -> Int {
        try sql.query("""
            SELECT coalesce(sum(outbox.queue_new_events(s.id, 1000000)), 0)::integer
            FROM outbox.subscriptions AS s
            WHERE s.enabled
            """)[0].decode(Int.self, at: 0)
    }
}
