import ArgumentParser
#if os(Linux)
import CMalloc
#endif
import Logging
import Metrics
import Prometheus
import OutboxAdmin
import OutboxRelay
import OutboxSQL
import ServiceLifecycle

/// `outbox-relay run`: delivers until SIGTERM or SIGINT, then drains and exits 0.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the relay: deliver committed events to their subscriptions."
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Apply pending migrations before starting.")
    var migrate = false

    @Option(name: .customLong("retry-schedule"), help: "Waits between attempts, then dead, e.g. 5s,5m,30m (env OUTBOX_RETRY_SCHEDULE).")
    var retrySchedule: String?

    @Option(help: "Time limit of one attempt (env OUTBOX_TIMEOUT; default 10s).")
    var timeout: String?

    @Option(name: .customLong("poll-interval"), help: "Look for due work this often without a notification (env OUTBOX_POLL_INTERVAL; default 1s).")
    var pollInterval: String?

    @Option(help: "How long a claim lasts unless renewed (env OUTBOX_LEASE; default 30s).")
    var lease: String?

    @Option(name: .customLong("max-in-flight"), help: "Requests in flight per subscription, all replicas together (env OUTBOX_MAX_IN_FLIGHT; default 100).")
    var maxInFlight: String?

    @Option(name: .customLong("shutdown-grace"), help: "After SIGTERM, how long requests in flight may finish (env OUTBOX_SHUTDOWN_GRACE; default 15s).")
    var shutdownGrace: String?

    @Option(name: .customLong("breaker-failures"), help: "Consecutive failures that open an endpoint's circuit (env OUTBOX_BREAKER_FAILURES; default 10).")
    var breakerFailures: String?

    @Option(name: .customLong("breaker-cooldown"), help: "First cool-down of an open circuit; doubles per failed probe (env OUTBOX_BREAKER_COOLDOWN; default 30s).")
    var breakerCooldown: String?

    @Option(name: .customLong("breaker-max-cooldown"), help: "Longest cool-down (env OUTBOX_BREAKER_MAX_COOLDOWN; default 10m).")
    var breakerMaxCooldown: String?

    @Option(name: .customLong("disable-after"), help: "Disable a subscription failing this long without a success (env OUTBOX_DISABLE_AFTER; default 5d).")
    var disableAfter: String?

    @Option(help: "Drop partitions of events and attempts that ended longer ago than this (env OUTBOX_RETENTION; default 7d).")
    var retention: String?

    @Option(name: .customLong("partition-interval"), help: "Time one partition of events and attempts covers, at least 1m (env OUTBOX_PARTITION_INTERVAL; default 1d).")
    var partitionInterval: String?

    @Option(name: .customLong("ca-bundle"), help: "PEM file of CA certificates to trust for https endpoints instead of the system's (env OUTBOX_CA_BUNDLE). Verification is always on.")
    var caBundle: String?

    @Option(name: .customLong("admin-listen"), help: "host:port of /healthz, /readyz and /metrics (env OUTBOX_ADMIN_LISTEN; default 0.0.0.0:9090).")
    var adminListen: String?

    @Option(name: .customLong("api-listen"), help: "host:port of the JSON admin API (env OUTBOX_API_LISTEN; off when unset).")
    var apiListen: String?

    @Option(name: .customLong("allow-private-networks"), help: "true to allow loopback/private targets (env OUTBOX_ALLOW_PRIVATE_NETWORKS; default false).")
    var allowPrivateNetworks: String?

    func run() async throws {
        limitMallocArenas()
        let logger = try global.bootstrapLogging()
        let configuration = try relayConfiguration()
        logger.info("starting outbox-relay \(OutboxRelayVersion.current)", metadata: ["configuration": "\(configuration.summary)"])

        try await prepareSchema(configuration.database, logger: logger)

        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(RelayMetricsBackend.factory(registry: registry))
        let relay = Relay(configuration: configuration, logger: logger)
        let readiness = ReadinessMonitor(target: configuration.database, isListening: { relay.isListening })
        let admin = AdminServer.make(
            address: configuration.adminListen, readiness: readiness, registry: registry, logger: logger,
            onListening: { port in logger.info("admin port listening", metadata: ["address": "\(configuration.adminListen.host):\(port)"]) })
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: admin)]
        if let apiAddress = try EnvironmentSetting.parse(apiListen, "OUTBOX_API_LISTEN", option: "api-listen", ListenAddress.init(parsing:)) {
            let api = APIServer.make(
                address: apiAddress, database: configuration.database, logger: logger,
                onListening: { port in logger.info("admin API listening", metadata: ["address": "\(apiAddress.host):\(port)"]) })
            services.append(.init(service: api))
        }
        let partitions = PartitionKeeper(
            target: configuration.database, partitionInterval: configuration.partitionInterval,
            retention: configuration.retention, logger: logger)
        let group = ServiceGroup(configuration: .init(
            // Shut down last to first: the relay stops claiming the moment SIGTERM
            // arrives, and the admin port answers until it has drained.
            services: services + [.init(service: readiness), .init(service: partitions), .init(service: relay)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }

    /// Migrates (with --migrate) or checks that the schema is current. libpq blocks,
    /// so this runs on a database client's own thread, not the cooperative pool.
    private func prepareSchema(_ target: ConnectionTarget, logger: Logger) async throws {
        // No statement deadline: a migration may rewrite a large table.
        let client = DatabaseClient(target: target, name: "startup", statementDeadline: nil)
        defer { client.close() }
        if migrate {
            let applied = try await client.run { connection in try OutboxSchema.migrateAndGrant(on: connection) }
            for migration in applied {
                logger.info("applied migration", metadata: ["migration": "\(OutboxSchema.fileName(of: migration))"])
            }
        } else if case .pending(let versions) = try await client.run({ connection in try OutboxSchema.migrator.status(on: connection) }) {
            throw ValidationError("the database schema is not current (pending migrations \(versions)): run `outbox-relay migrate` or start with --migrate")
        }
    }

    private func relayConfiguration() throws -> RelayConfiguration {
        var configuration = RelayConfiguration(database: try global.databaseTarget())
        if let intervals = try EnvironmentSetting.parse(retrySchedule, "OUTBOX_RETRY_SCHEDULE", option: "retry-schedule", DurationText.parseList) {
            configuration.retrySchedule = RetrySchedule(intervals: intervals, jitter: configuration.retrySchedule.jitter)
        }
        let duration = { (flag: String?, variable: String, option: String) in
            try EnvironmentSetting.parse(flag, variable, option: option, DurationText.parse)
        }
        if let value = try duration(timeout, "OUTBOX_TIMEOUT", "timeout") { configuration.timeout = value }
        if let value = try duration(pollInterval, "OUTBOX_POLL_INTERVAL", "poll-interval") { configuration.pollInterval = value }
        if let value = try duration(lease, "OUTBOX_LEASE", "lease") { configuration.lease = value }
        if let value = try duration(shutdownGrace, "OUTBOX_SHUTDOWN_GRACE", "shutdown-grace") { configuration.shutdownGracePeriod = value }
        if let value = try EnvironmentSetting.parse(maxInFlight, "OUTBOX_MAX_IN_FLIGHT", option: "max-in-flight", OperatorInput.positiveInteger) {
            configuration.maxInFlight = value
        }
        if let value = try EnvironmentSetting.parse(breakerFailures, "OUTBOX_BREAKER_FAILURES", option: "breaker-failures", OperatorInput.positiveInteger) {
            configuration.breaker.failureThreshold = value
        }
        if let value = try duration(breakerCooldown, "OUTBOX_BREAKER_COOLDOWN", "breaker-cooldown") { configuration.breaker.cooldown = value }
        if let value = try duration(breakerMaxCooldown, "OUTBOX_BREAKER_MAX_COOLDOWN", "breaker-max-cooldown") { configuration.breaker.maxCooldown = value }
        if let value = try duration(disableAfter, "OUTBOX_DISABLE_AFTER", "disable-after") { configuration.breaker.disableAfter = value }
        if let value = try duration(retention, "OUTBOX_RETENTION", "retention") { configuration.retention = value }
        if let value = try duration(partitionInterval, "OUTBOX_PARTITION_INTERVAL", "partition-interval") {
            configuration.partitionInterval = value
        }
        configuration.caBundlePath = EnvironmentSetting.value(caBundle, "OUTBOX_CA_BUNDLE")
        if let value = try EnvironmentSetting.parse(adminListen, "OUTBOX_ADMIN_LISTEN", option: "admin-listen", ListenAddress.init(parsing:)) {
            configuration.adminListen = value
        }
        if let value = try EnvironmentSetting.parse(allowPrivateNetworks, "OUTBOX_ALLOW_PRIVATE_NETWORKS", option: "allow-private-networks", OperatorInput.boolean) {
            configuration.allowPrivateNetworks = value
        }
        do {
            try configuration.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return configuration
    }
}

/// glibc gives threads that allocate at once arenas of their own (up to 8 per core);
/// buffers made on one thread (claims, the HTTP engine, the recorder) and freed on
/// another then stay reserved in several arenas. Two arenas: W1 at 500 in flight went
/// from 54 to 50 MiB peak RSS and from ~17,800 to ~20,000 deliveries/s (scripts/bench).
private func limitMallocArenas() {
    #if os(Linux)
    _ = mallopt(M_ARENA_MAX, 2)
    #endif
}
