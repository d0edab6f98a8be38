import Foundation
import OutboxSQL

/// Everything `outbox-relay run` needs, parsed and validated once at start.
public struct RelayConfiguration: Sendable {
    public var database: ConnectionTarget
    public var retrySchedule: RetrySchedule = .standard
    /// Per attempt, unless the subscription sets its own.
    public var timeout: Duration = .seconds(10)
    /// How often to look for due work without a notification.
    public var pollInterval: Duration = .seconds(1)
    /// How long a claim lasts without renewal; live relays renew at a third of it.
    public var lease: Duration = .seconds(30)
    /// Requests in flight per subscription over all replicas, unless the subscription sets its own.
    public var maxInFlight: Int = 100
    /// Deliveries claimed per subscription in one statement.
    public var claimBatchSize: Int = 200
    /// Deliveries this process holds at once (claimed, not yet recorded).
    public var maxOutstanding: Int = 2_000
    /// After SIGTERM: how long in-flight requests may finish before they are released.
    public var shutdownGracePeriod: Duration = .seconds(15)
    public var allowPrivateNetworks: Bool = false
    /// Partitions of events and attempts that ended longer ago than this are dropped.
    public var retention: Duration = .seconds(7 * 86_400)
    /// How much time one partition of events and attempts covers.
    public var partitionInterval: Duration = .seconds(86_400)
    /// The per-subscription circuit breaker and the disable period.
    public var breaker = CircuitBreakerSettings()
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    public var adminListen = ListenAddress(host: "0.0.0.0", port: 9090)
    public var caBundlePath: String?
    public var responseExcerptBytes: Int = 1_024
    public var userAgent: String = "outbox-relay/\(OutboxRelayVersion.current)"

    public init(database: ConnectionTarget) {
        self.database = database
    }

    /// Refuses settings that cannot work, with a message naming the setting.
    public func validate() throws {
        func require(_ condition: Bool, _ message: String) throws {
            if !condition { throw ConfigurationError(message: message) }
        }
        try require(timeout > .zero, "OUTBOX_TIMEOUT must be positive")
        try require(pollInterval > .zero, "OUTBOX_POLL_INTERVAL must be positive")
        try require(lease >= .seconds(2), "OUTBOX_LEASE must be at least 2s")
        try require(lease > timeout, "OUTBOX_LEASE (\(DurationText.format(lease))) must be longer than OUTBOX_TIMEOUT (\(DurationText.format(timeout)))")
        try require(maxInFlight > 0, "OUTBOX_MAX_IN_FLIGHT must be positive")
        try require(retrySchedule.intervals.allSatisfy { $0 > .zero }, "every OUTBOX_RETRY_SCHEDULE interval must be positive")
        try require(shutdownGracePeriod >= .zero, "the shutdown grace period must not be negative")
        try require(retention >= .zero, "OUTBOX_RETENTION must not be negative")
        try require(partitionInterval >= .seconds(60), "OUTBOX_PARTITION_INTERVAL must be at least 1m")
        if let caBundlePath {
            try require(FileManager.default.isReadableFile(atPath: caBundlePath), "OUTBOX_CA_BUNDLE \(caBundlePath) is not a readable file")
        }
        try require(breaker.failureThreshold > 0, "OUTBOX_BREAKER_FAILURES must be positive")
        try require(breaker.cooldown > .zero, "OUTBOX_BREAKER_COOLDOWN must be positive")
        try require(breaker.maxCooldown >= breaker.cooldown, "OUTBOX_BREAKER_MAX_COOLDOWN must be at least OUTBOX_BREAKER_COOLDOWN")
        try require(breaker.disableAfter > .zero, "OUTBOX_DISABLE_AFTER must be positive")
    }

    /// One line for the start-up log; shows no password.
    public var summary: String {
        [
            "database=\(database)",
            "retry_schedule=\(retrySchedule.intervals.map(DurationText.format).joined(separator: ","))",
            "timeout=\(DurationText.format(timeout))",
            "poll_interval=\(DurationText.format(pollInterval))",
            "lease=\(DurationText.format(lease))",
            "max_in_flight=\(maxInFlight)",
            "breaker_failures=\(breaker.failureThreshold)",
            "breaker_cooldown=\(DurationText.format(breaker.cooldown))..\(DurationText.format(breaker.maxCooldown))",
            "disable_after=\(DurationText.format(breaker.disableAfter))",
            "retention=\(DurationText.format(retention))",
            "partition_interval=\(DurationText.format(partitionInterval))",
            "allow_private_networks=\(allowPrivateNetworks)",
            "admin_listen=\(adminListen)",
            "ca_bundle=\(caBundlePath ?? "system")",
        ].joined(separator: " ")
    }
}

/// A setting that cannot be used.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// The version sent in `user-agent`.
public enum OutboxRelayVersion {
    public static let current = "0.1.0"
}
