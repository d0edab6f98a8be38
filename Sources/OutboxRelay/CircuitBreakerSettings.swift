import OutboxSQL

/// When an endpoint's circuit opens, how long it stays open, and when a
/// subscription that keeps failing is disabled (SPEC §5). The state itself lives
/// in `outbox.subscription_state`, shared by all replicas; the transitions are in
/// `outbox.record_endpoint_results` (sql/0005_relay.sql).
public struct CircuitBreakerSettings: Sendable, Equatable {
    /// Consecutive failed attempts that open the circuit.
    public var failureThreshold: Int = 10
    /// The first cool-down; each failed probe doubles it.
    public var cooldown: Duration = .seconds(30)
    /// The longest cool-down.
    public var maxCooldown: Duration = .seconds(600)
    /// Failing without a success for this long disables the subscription.
    public var disableAfter: Duration = .seconds(5 * 86_400)

    public init() {}
}

/// A subscription whose circuit changed state, or that was disabled, in one record.
public struct EndpointChange: Sendable, Equatable {
    public var subscriptionID: Int64
    /// `closed`, `open` or `half_open`.
    public var circuitState: String
    public var previousCircuitState: String
    public var disabled: Bool

    init(row: PostgresRow) throws {
        subscriptionID = try row.decode(at: 0)
        circuitState = try row.decode(at: 1)
        previousCircuitState = try row.decode(at: 2)
        disabled = try row.decode(at: 3)
    }
}
