import OutboxSQL

/// Creates a subscription with its settings in one statement, so a refused
/// setting leaves nothing behind; returns its signing secret, the one time any
/// surface shows it. The schema checks every value (sql/0002_validation.sql).
/// Used by `subscription add` and `POST /api/v1/subscriptions`.
public struct SubscriptionCreation: Sendable {
    public var name: String
    public var url: String
    /// Exact types (`order.created`), prefixes (`order.*`) or `*`.
    public var eventTypes: [String]
    /// `whsec_…`; generated when nil.
    public var secret: String?
    public var enabled = true
    public var ordered = false
    /// Static headers as a JSON object of strings; none when nil.
    public var headers: PostgresJSON?
    /// Unset settings (nil) follow the relay's global defaults.
    public var timeout: Duration?
    public var retrySchedule: [Duration]?
    public var maxInFlight: Int?
    public var rateLimit: Double?

    public init(name: String, url: String, eventTypes: [String]) {
        self.name = name
        self.url = url
        self.eventTypes = eventTypes
    }

    public func run(_ connection: Connection) throws -> String {
        do {
            // The secret is chosen first and returned from there, not read back with
            // RETURNING: the operator's role writes secrets but may not read one.
            return try connection.query("""
                WITH chosen AS (
                    SELECT coalesce($4, outbox.generate_secret()) AS secret
                ), created AS (
                    INSERT INTO outbox.subscriptions
                        (name, url, event_types, secret, enabled, ordered, headers, timeout, retry_schedule, max_in_flight, rate_limit)
                    SELECT $1::text, $2::text, $3::text[], chosen.secret, $5::boolean, $6::boolean, coalesce($7::jsonb, '{}'::jsonb),
                           $8::interval, $9::interval[], $10::integer, $11::numeric
                    FROM chosen
                )
                SELECT secret FROM chosen
                """, [name, url, eventTypes, secret, enabled, ordered, headers, timeout, retrySchedule, maxInFlight, rateLimit]
            )[0].decode(String.self, at: 0)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw OperationError(.conflict, "a subscription named \"\(name)\" already exists: change it with an update instead")
        }
    }
}
