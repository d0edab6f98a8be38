import ArgumentParser
import OutboxSQL

/// `outbox-relay status`: the backlog, how far behind the relay is, and every
/// subscription's health.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the backlog, the lag and each subscription's health."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    static let backlogColumns = [
        "pending", "due", "delivering", "dead", "oldest_pending_age_seconds", "due_lag_seconds",
    ]

    func run() throws {
        let json = try output.isJSON
        let (backlog, health) = try global.withDatabase { connection in
            try connection.withTransaction { connection in
                // One snapshot for both queries, so the totals and the rows agree.
                try connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return (try Self.backlog(connection), try SubscriptionHealthRecord.load(connection).map(\.output))
            }
        }
        if json {
            print(try TableOutput.json(OutputRecord(["backlog": .record(backlog), "subscriptions": .records(health)])))
        } else {
            print("BACKLOG")
            print(TableOutput.table([backlog], columns: Self.backlogColumns, whenEmpty: ""))
            print("")
            print("SUBSCRIPTIONS")
            print(TableOutput.table(health, columns: SubscriptionHealthRecord.columns, whenEmpty: "no subscriptions"))
        }
    }

    /// Counts across all subscriptions. Each count reads its status's partial
    /// index, never the (large) history of succeeded deliveries.
    static func backlog(_ connection: Connection) throws -> OutputRecord {
        let row = try connection.query("""
            SELECT (SELECT count(*) FROM outbox.deliveries WHERE status = 'pending') AS pending,
                   (SELECT count(*) FROM outbox.deliveries WHERE status = 'pending' AND next_attempt_at <= now()) AS due,
                   (SELECT count(*) FROM outbox.deliveries WHERE status = 'delivering') AS delivering,
                   (SELECT count(*) FROM outbox.deliveries WHERE status = 'dead') AS dead,
                   extract(epoch FROM now() - (SELECT min(created_at) FROM outbox.deliveries WHERE status = 'pending'))
                       AS oldest_pending_age_seconds,
                   extract(epoch FROM now() - (SELECT min(next_attempt_at) FROM outbox.deliveries
                                               WHERE status = 'pending' AND next_attempt_at <= now()))
                       AS due_lag_seconds
            """)[0]
        return OutputRecord([
            "pending": .integer(try row.decode(Int64.self, at: 0)),
            "due": .integer(try row.decode(Int64.self, at: 1)),
            "delivering": .integer(try row.decode(Int64.self, at: 2)),
            "dead": .integer(try row.decode(Int64.self, at: 3)),
            "oldest_pending_age_seconds": .age(try row.decode(Double?.self, at: 4)),
            // How long the longest-waiting due delivery has waited past its due time.
            "due_lag_seconds": .age(try row.decode(Double?.self, at: 5)),
        ])
    }
}
