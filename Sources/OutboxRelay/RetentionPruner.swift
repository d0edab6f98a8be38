import Logging
import Metrics
import OutboxSQL
import ServiceLifecycle

/// Retention (SPEC §5) as a `Service`: deletes succeeded deliveries, their
/// attempts, and events left without deliveries once they are older than
/// `retention`. Dead letters, and their events, are kept.
///
/// A round starts at once and then every `interval`. It calls `outbox.prune`
/// (sql/0006_retention.sql) a batch at a time until a batch comes back short,
/// pausing between batches at least as long as the batch took, so it never holds
/// the database busy. Batches lock only their own rows and skip locked ones:
/// several replicas may prune at once, and the relay never waits for them.
public final class RetentionPruner: Service, Sendable {
    /// Rows one round (or one batch) deleted.
    struct Counts: Sendable, Equatable {
        var deliveries = 0
        var attempts = 0
        var events = 0
        var batches = 0

        var isEmpty: Bool { deliveries == 0 && attempts == 0 && events == 0 }
    }

    private let target: ConnectionTarget
    private let retention: Duration
    private let interval: Duration
    private let batchSize: Int
    private let logger: Logger

    /// The shortest pause between two batches of a round.
    static let pauseBetweenBatches: Duration = .milliseconds(50)

    /// One batch; a DBA can run the same by hand.
    static let pruneSQL = """
        SELECT deliveries, attempts, events
        FROM outbox.prune($1::interval, $2::integer)
        """

    /// - Parameters:
    ///   - retention: how long succeeded deliveries and finished events are kept (zero or more).
    ///   - interval: the time between rounds.
    ///   - batchSize: the most rows of each table one batch deletes (at least 1).
    public init(
        target: ConnectionTarget, retention: Duration, interval: Duration = .seconds(60), batchSize: Int = 1_000,
        logger: Logger
    ) {
        self.target = target
        self.retention = retention
        self.interval = interval
        self.batchSize = batchSize
        self.logger = logger
    }

    public func run() async throws {
        // libpq blocks: the client runs it on its own thread, off the cooperative pool.
        let client = DatabaseClient(target: target, name: "retention")
        defer { client.close() }
        logger.info("retention pruner started", metadata: [
            "retention": "\(DurationText.format(retention))",
            "interval": "\(DurationText.format(interval))",
            "batch_size": "\(batchSize)",
        ])
        await cancelWhenGracefulShutdown { [self] in
            var health = DatabaseHealth(logger: logger, activity: "pruning expired deliveries")
            while !Task.isCancelled {
                var wait = interval
                do {
                    let round = try await pruneRound(client)
                    health.succeeded()
                    if !round.isEmpty { report(round) }
                } catch {
                    if Task.isCancelled { break }
                    health.failed(error)
                    Counter(label: "outbox_database_errors_total", dimensions: [("activity", "pruning")]).increment()
                    wait = min(interval, health.backoff)
                }
                try? await Task.sleep(for: wait)
            }
        }
        logger.info("retention pruner stopped")
    }

    /// Batches until one comes back short, or until shutdown between two batches.
    private func pruneRound(_ client: DatabaseClient) async throws -> Counts {
        var round = Counts()
        while true {
            let started = ContinuousClock.now
            let batch = try await pruneBatch(client)
            round.deliveries += batch.deliveries
            round.attempts += batch.attempts
            round.events += batch.events
            round.batches += 1
            guard batch.deliveries >= batchSize || batch.events >= batchSize else { return round }
            try? await Task.sleep(for: max(Self.pauseBetweenBatches, ContinuousClock.now - started))
            if Task.isCancelled { return round }
        }
    }

    private func pruneBatch(_ client: DatabaseClient) async throws -> Counts {
        let parameters: [any PostgresEncodable] = [retention, batchSize]
        return try await client.run { connection in
            let row = try connection.query(Self.pruneSQL, parameters)[0]
            var batch = Counts()
            batch.deliveries = try row.decode(Int.self, at: 0)
            batch.attempts = try row.decode(Int.self, at: 1)
            batch.events = try row.decode(Int.self, at: 2)
            return batch
        }
    }

    private func report(_ round: Counts) {
        logger.info("pruned expired deliveries", metadata: [
            "deliveries": "\(round.deliveries)",
            "attempts": "\(round.attempts)",
            "events": "\(round.events)",
            "batches": "\(round.batches)",
        ])
        for (table, count) in [("deliveries", round.deliveries), ("attempts", round.attempts), ("events", round.events)] {
            Counter(label: "outbox_pruned_rows_total", dimensions: [("table", table)]).increment(by: count)
        }
    }
}
