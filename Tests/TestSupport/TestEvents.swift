import OutboxSQL

// The SQL steps most relay tests begin with: subscribe, publish, wait for a delivery.

/// Creates a subscription from SQL, as a DBA would.
public func subscribe(_ sql: Connection, _ name: String, _ url: String, _ patterns: [String], secret: String? = nil, ordered: Bool = false) throws {
    try sql.query("SELECT outbox.subscribe($1, $2, $3::text[], $4, $5)", [name, url, patterns, secret, ordered])
}

/// Publishes `count` events of `type` in one transaction, payloads {"n": from…}.
public func publish(_ sql: Connection, count: Int, type: String, from first: Int) throws {
    try sql.query("""
        INSERT INTO outbox.events (event_type, payload)
        SELECT $1, jsonb_build_object('n', n)
        FROM generate_series($2::integer, $3::integer) AS n
        """, [type, first, first + count - 1])
}

/// Publishes one `order.created` event; returns its event_id.
public func publishOne(_ sql: Connection) throws -> String {
    try sql.query("SELECT outbox.publish('order.created', '{\"id\": 1}'::jsonb)")[0].decode(String.self, at: 0)
}

/// Waits until the only delivery has `status`; returns its id.
public func waitForDelivery(_ database: TestDatabase, status: String) async throws -> Int64 {
    try await waitUntil("the delivery is \(status)") {
        try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = $1", [status], as: Int.self) == 1
    }
    return try database.scalar("SELECT id FROM outbox.deliveries WHERE status = $1", [status], as: Int64.self)
}
