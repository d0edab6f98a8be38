import Logging
import OutboxRelay
import OutboxSQL
import ServiceLifecycle

/// The relay running inside the test process, in a `ServiceGroup` as
/// `outbox-relay run` runs it, with settings that make tests quick: a short poll,
/// retries after a second, no jitter, private networks allowed (127.0.0.1).
public final class InProcessRelay: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    public init(database: TestDatabase, configure: (inout RelayConfiguration) -> Void = { _ in }) {
        var configuration = RelayConfiguration(database: database.target)
        configuration.pollInterval = .milliseconds(200)
        configuration.retrySchedule = RetrySchedule(intervals: [.seconds(1), .seconds(1)], jitter: 0)
        configuration.timeout = .seconds(2)
        configuration.lease = .seconds(10)
        configuration.shutdownGracePeriod = .seconds(5)
        configuration.allowPrivateNetworks = true
        configuration.breaker.cooldown = .milliseconds(500)
        configuration.breaker.maxCooldown = .seconds(1)
        configure(&configuration)
        var logger = Logger(label: "outbox-relay-test")
        logger.logLevel = .notice
        let relay = Relay(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: relay)], logger: logger))
        self.group = group
        task = Task { try await group.run() }
    }

    /// Shuts the relay down gracefully and waits until it has stopped.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

extension InProcessRelay {
    /// Runs `body` with a relay running, and stops the relay afterwards, also when `body` throws.
    public static func running<T: Sendable>(
        database: TestDatabase,
        configure: (inout RelayConfiguration) -> Void = { _ in },
        _ body: () async throws -> T
    ) async throws -> T {
        let relay = InProcessRelay(database: database, configure: configure)
        let value: T
        do {
            value = try await body()
        } catch {
            try? await relay.stop()
            throw error
        }
        try await relay.stop()
        return value
    }
}
