import Foundation
import OutboxSQL

/// The relay's side of the conversation with PostgreSQL: claim, record, renew,
/// rescue, release. The SQL is in `sql/0005_relay.sql`; each kind of work has
/// its own connection and thread, so a slow write never delays a claim.
public final class DeliveryStore: Sendable {
    /// This process's name on the leases it holds.
    public let owner: String
    public let lease: Duration
    private let claims: DatabaseClient
    private let records: DatabaseClient
    private let upkeep: DatabaseClient

    public init(target: ConnectionTarget, owner: String, lease: Duration) {
        self.owner = owner
        self.lease = lease
        claims = DatabaseClient(target: target, name: "claim")
        records = DatabaseClient(target: target, name: "record")
        upkeep = DatabaseClient(target: target, name: "upkeep")
    }

    private enum Statement {
        static let claim = PreparedStatement(
            name: "outbox_claim",
            sql: "SELECT * FROM outbox.claim_deliveries($1, $2, $3, $4::interval, $5::bigint[])")
        static let prepareToSleep = PreparedStatement(name: "outbox_prepare_to_sleep", sql: "SELECT outbox.prepare_to_sleep()")
        static let stopSleeping = PreparedStatement(name: "outbox_stop_sleeping", sql: "SELECT outbox.stop_sleeping()")
        static let record = PreparedStatement(
            name: "outbox_record",
            sql: """
                SELECT * FROM outbox.record_results(
                    owner => $1,
                    delivery_ids => $2::bigint[],
                    event_ids => $3::text[],
                    subscription_ids => $4::bigint[],
                    attempt_numbers => $5::integer[],
                    outcomes => $6::text[],
                    next_attempt_ats => $7::timestamptz[],
                    status_codes => $8::integer[],
                    errors => $9::text[],
                    started_ats => $10::timestamptz[],
                    durations_ms => $11::double precision[],
                    excerpts => $12::text[],
                    endpoint_ids => $13::bigint[],
                    last_success_ats => $14::timestamptz[],
                    trailing_failures => $15::integer[],
                    last_failure_ats => $16::timestamptz[],
                    failure_threshold => $17,
                    base_cooldown => $18::interval,
                    max_cooldown => $19::interval,
                    disable_after => $20::interval,
                    gone_ids => $21::bigint[],
                    gone_reason => $22)
                """)
        static let backlog = PreparedStatement(
            name: "outbox_backlog",
            sql: """
                SELECT h.subscription,
                       h.enabled,
                       h.pending,
                       coalesce(extract(epoch FROM h.oldest_pending_age), 0)::double precision AS oldest_pending_seconds,
                       h.circuit_state
                FROM outbox.subscription_health AS h
                """)
    }

    /// Claims up to `batchSize` due deliveries per subscription. `answered`: this
    /// process's deliveries whose requests were answered and whose outcomes may not be
    /// recorded yet; their slots of max in flight are free (sql/0014_answered_slots.sql).
    public func claim(batchSize: Int, defaultMaxInFlight: Int, answered: [Int64] = []) async throws -> [ClaimedDelivery] {
        let (owner, lease) = (owner, lease)
        return try await claims.run { connection in
            try ClaimedDelivery.decode(connection.query(
                Statement.claim, [batchSize, defaultMaxInFlight, owner, lease, answered]))
        }
    }

    /// Asks to sleep until a NOTIFY (`outbox.prepare_to_sleep`): true when this
    /// relay now holds the wake-up lock, so every commit notifies it; false
    /// while a publisher that may not have seen it is still committing, another
    /// relay sleeps, or due work waits. Call `stopSleeping()` on waking.
    public func prepareToSleep() async throws -> Bool {
        try await claims.run { connection in
            try connection.query(Statement.prepareToSleep)[0].decode(Bool.self, at: 0)
        }
    }

    /// Gives the wake-up lock back: publishers stop notifying this relay.
    public func stopSleeping() async throws {
        try await claims.run { connection in
            _ = try connection.query(Statement.stopSleeping)
        }
    }

    /// Records judged attempts, the endpoints' latest results and 410 disables in
    /// one statement (`outbox.record_results`), so no transaction stays open
    /// across round trips. Returns the endpoints whose circuit changed or that
    /// were disabled.
    @discardableResult
    public func record(_ verdicts: [AttemptVerdict], breaker: CircuitBreakerSettings) async throws -> [EndpointChange] {
        guard !verdicts.isEmpty else { return [] }
        let owner = owner
        let endpoints = EndpointResults(verdicts)
        let gone = Array(Set(verdicts.filter { $0.endpointGone }.map { $0.subscriptionID }))
        let goneReason: String? = gone.isEmpty ? nil : "endpoint answered 410 Gone at \(Date().postgresText ?? "")"
        return try await records.run { connection in
            try connection.query(Statement.record, [
                owner,
                verdicts.map { $0.deliveryID },
                verdicts.map { $0.eventID },
                verdicts.map { $0.subscriptionID },
                verdicts.map { $0.attempt },
                verdicts.map { $0.outcome.rawValue },
                verdicts.map { $0.nextAttemptAt },
                verdicts.map { $0.statusCode },
                verdicts.map { $0.error },
                verdicts.map { $0.startedAt },
                verdicts.map { $0.durationMilliseconds },
                verdicts.map { $0.responseExcerpt },
                endpoints.subscriptionIDs, endpoints.lastSuccessAt, endpoints.trailingFailures, endpoints.lastFailureAt,
                breaker.failureThreshold, breaker.cooldown, breaker.maxCooldown, breaker.disableAfter,
                gone, goneReason,
            ]).rows.map(EndpointChange.init(row:))
        }
    }

    /// Extends the lease of everything this relay has in flight.
    @discardableResult
    public func renewLeases() async throws -> Int {
        let (owner, lease) = (owner, lease)
        return try await upkeep.run { connection in
            try connection.query("SELECT outbox.renew_leases($1, $2::interval)", [owner, lease])[0].decode(Int.self, at: 0)
        }
    }

    /// Returns deliveries whose lease expired (their relay died) to pending.
    public func rescueExpiredLeases() async throws -> Int {
        try await upkeep.run { connection in
            try connection.query("SELECT outbox.rescue_expired_leases()")[0].decode(Int.self, at: 0)
        }
    }

    /// Gives claimed deliveries back without charging an attempt.
    @discardableResult
    public func release(_ deliveryIDs: [Int64]) async throws -> Int {
        guard !deliveryIDs.isEmpty else { return 0 }
        let owner = owner
        return try await records.run { connection in
            try connection.query("SELECT outbox.release_deliveries($1, $2::bigint[])", [owner, deliveryIDs])[0]
                .decode(Int.self, at: 0)
        }
    }

    /// Pending work and endpoint state per subscription, for the backlog metrics
    /// (`outbox.subscription_health`): costs what the backlog costs, never the history.
    public func backlog() async throws -> [SubscriptionBacklog] {
        try await upkeep.run { connection in
            try connection.query(Statement.backlog).rows.map { row in
                SubscriptionBacklog(
                    name: try row.decode(named: "subscription"), enabled: try row.decode(named: "enabled"),
                    pending: try row.decode(named: "pending"),
                    oldestPendingAgeSeconds: try row.decode(named: "oldest_pending_seconds"),
                    circuitState: try row.decode(named: "circuit_state"))
            }
        }
    }

    /// Closes the connections.
    public func close() {
        claims.close()
        records.close()
        upkeep.close()
    }
}

/// Per subscription, what a batch of attempts says about its endpoint.
struct EndpointResults {
    var subscriptionIDs: [Int64] = []
    var lastSuccessAt: [Date?] = []
    var trailingFailures: [Int] = []
    var lastFailureAt: [Date?] = []

    init(_ verdicts: [AttemptVerdict]) {
        let bySubscription = Dictionary(grouping: verdicts, by: { $0.subscriptionID })
        for (subscriptionID, attempts) in bySubscription.sorted(by: { $0.key < $1.key }) {
            let ordered = attempts.sorted { $0.startedAt < $1.startedAt }
            let lastSuccess = ordered.last { $0.outcome == .succeeded }?.startedAt
            let failures = ordered.filter { $0.outcome != .succeeded }
            subscriptionIDs.append(subscriptionID)
            lastSuccessAt.append(lastSuccess)
            trailingFailures.append(failures.filter { lastSuccess == nil || $0.startedAt > lastSuccess! }.count)
            lastFailureAt.append(failures.last?.startedAt)
        }
    }
}
