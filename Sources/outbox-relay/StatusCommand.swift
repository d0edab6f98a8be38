import ArgumentParser
import OutboxOperations
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
                return (Self.output(try BacklogTotals.load(connection)), try SubscriptionHealth.load(connection).map(\.output))
            }
        }
        if json {
            print(try TableOutput.json(OutputRecord(["backlog": .record(backlog), "subscriptions": .records(health)])))
        } else {
            print("BACKLOG")
            print(TableOutput.table([backlog], columns: Self.backlogColumns, whenEmpty: ""))
            print("")
            print("SUBSCRIPTIONS")
            print(TableOutput.table(health, columns: SubscriptionHealth.columns, whenEmpty: "no subscriptions"))
        }
    }

    /// The totals of `outbox.backlog`, the backlog's one definition.
    static func output(_ backlog: BacklogTotals) -> OutputRecord {
        OutputRecord([
            "pending": .integer(backlog.pending),
            "due": .integer(backlog.due),
            "delivering": .integer(backlog.delivering),
            "dead": .integer(backlog.dead),
            "oldest_pending_age_seconds": .age(backlog.oldestPendingAgeSeconds),
            "due_lag_seconds": .age(backlog.dueLagSeconds),
        ])
    }
}
