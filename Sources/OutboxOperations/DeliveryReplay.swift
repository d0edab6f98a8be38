import OutboxSQL

/// Sends one dead or succeeded delivery again with a fresh retry schedule
/// (`outbox.replay`): its attempts keep their history and are numbered on, and
/// the receiver sees the same webhook-id. Used by `replay --delivery` and
/// `POST /api/v1/deliveries/{id}/replay`.
public struct DeliveryReplay: Sendable {
    public var delivery: Int64

    public init(delivery: Int64) {
        self.delivery = delivery
    }

    /// What was replayed, for the operator's confirmation.
    public struct Result: Sendable {
        public let eventID: String
        public let subscription: String
        public let status: String
    }

    public func run(_ connection: Connection) throws -> Result {
        try connection.withTransaction { connection in
            // outbox.replay raises no_data_found (P0002) for an unknown id, with its own message.
            try connection.query("SELECT outbox.replay($1)", [delivery])
            let rows = try connection.query("""
                SELECT d.event_id, s.name, d.status
                FROM outbox.deliveries AS d
                JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
                WHERE d.id = $1
                """, [delivery])
            guard rows.count == 1 else { throw OperationError.noDelivery(delivery) }
            return Result(eventID: try rows[0].decode(String.self, at: 0),
                          subscription: try rows[0].decode(String.self, at: 1),
                          status: try rows[0].decode(String.self, at: 2))
        }
    }
}
