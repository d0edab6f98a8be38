import Logging
import Metrics
import OutboxSQL
import ServiceLifecycle

/// Keeps the time partitions of `outbox.events` and `outbox.attempts` (SPEC §10)
/// as a `Service`: creates them `ahead` of time and drops whole partitions older
/// than the retention period (`sql/0012_partitions.sql`). Dead letters and
/// deliveries not yet read keep their events (moved to the default partition).
/// It calls them through `outbox.create_history_partitions`/`drop_history_partitions`
/// (`sql/0016_roles.sql`), which run as the schema's owner: the relay's role
/// creates and owns no table.
///
/// A round runs at start and then every `interval`. One replica at a time does the
/// work (session advisory lock 1868722810, 0); the others skip the round. Creating
/// never blocks the host's inserts; dropping detaches, which waits at most 100 ms
/// for its lock and otherwise tries again next round.
public final class PartitionKeeper: Service, Sendable {
    private let target: ConnectionTarget
    private let partitionInterval: Duration
    private let retention: Duration
    private let interval: Duration
    private let logger: Logger

    /// The partitioned tables, in the order they are kept.
    static let tables = ["outbox.events", "outbox.attempts"]

    /// - Parameters:
    ///   - partitionInterval: how much time one partition covers (at least a minute).
    ///   - retention: partitions that end longer ago than this are dropped.
    public init(target: ConnectionTarget, partitionInterval: Duration, retention: Duration, logger: Logger) {
        self.target = target
        self.partitionInterval = partitionInterval
        self.retention = retention
        // Often enough that the partitions ahead never run out, at least once a minute.
        interval = min(.seconds(60), partitionInterval / 4)
        self.logger = logger
    }

    /// How far ahead partitions exist: three intervals.
    var ahead: Duration { partitionInterval * 3 }

    public func run() async throws {
        // libpq blocks: the client runs it on its own thread, off the cooperative pool.
        let client = DatabaseClient(target: target, name: "partitions")
        defer { client.close() }
        logger.info("partition keeper started", metadata: [
            "partition_interval": "\(DurationText.format(partitionInterval))",
            "retention": "\(DurationText.format(retention))",
        ])
        await cancelWhenGracefulShutdown { [self] in
            var health = DatabaseHealth(logger: logger, activity: "keeping partitions")
            while !Task.isCancelled {
                var wait = interval
                do {
                    try await round(client)
                    health.succeeded()
                } catch {
                    if Task.isCancelled { break }
                    health.failed(error)
                    wait = min(interval, health.backoff)
                }
                try? await Task.sleep(for: wait)
            }
        }
        logger.info("partition keeper stopped")
    }

    /// Creates what is missing, then drops what expired, each table in its own
    /// statement so a drop that could not get its lock undoes nothing else.
    private func round(_ client: DatabaseClient) async throws {
        let (every, ahead, retention) = (partitionInterval, ahead, retention)
        let changes = try await client.run { connection -> [(String, Int, Int)] in
            guard try connection.query("SELECT pg_try_advisory_lock(1868722810, 0)")[0].decode(Bool.self, at: 0) else {
                return []
            }
            defer { _ = try? connection.query("SELECT pg_advisory_unlock(1868722810, 0)") }
            var changes: [(String, Int, Int)] = []
            for table in Self.tables {
                let created = try Self.unlessBusy(connection.query(
                    "SELECT outbox.create_history_partitions($1::regclass, $2::interval, $3::interval)", [table, every, ahead]))
                let dropped = try Self.unlessBusy(connection.query(
                    "SELECT outbox.drop_history_partitions($1::regclass, $2::interval)", [table, retention]))
                changes.append((table, created, dropped))
            }
            return changes
        }
        for (table, created, dropped) in changes where created > 0 || dropped > 0 {
            logger.info("partitions kept", metadata: ["table": "\(table)", "created": "\(created)", "dropped": "\(dropped)"])
            Counter(label: "outbox_partitions_created_total", dimensions: [("table", table)]).increment(by: created)
            Counter(label: "outbox_partitions_dropped_total", dimensions: [("table", table)]).increment(by: dropped)
        }
    }

    /// The count a partition function returned, or 0 when it could not get its
    /// lock in time (lock_not_available: the table was busy; the next round tries again).
    private static func unlessBusy(_ result: @autoclosure () throws -> QueryResult) throws -> Int {
        do {
            return try result()[0].decode(Int.self, at: 0)
        } catch let error as PostgresError where error.sqlState == "55P03" {
            return 0
        }
    }
}
