import ArgumentParser
import OutboxSQL

/// `outbox-relay replay --delivery ID | --dead [--subscription NAME]`: sends
/// dead (or succeeded) deliveries again, with a fresh retry schedule.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Deliver a dead or succeeded delivery again (--delivery), or every dead letter (--dead).",
        discussion: "Attempts keep their history and are numbered on; receivers see the same webhook-id."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "The delivery's id (see `outbox-relay deliveries`).")
    var delivery: Int64?

    @Flag(help: "Replay every dead delivery (of --subscription, if given).")
    var dead = false

    @Option(help: "With --dead: only this subscription's dead deliveries.")
    var subscription: String?

    /// Dead letters replayed per transaction.
    static let batchSize = 500

    func validate() throws {
        guard (delivery != nil) != dead else {
            throw ValidationError("give exactly one of --delivery ID or --dead")
        }
        if subscription != nil && !dead {
            throw ValidationError("--subscription goes with --dead (a delivery id already names its subscription)")
        }
    }

    func run() throws {
        let json = try output.isJSON
        if let delivery {
            let record = try global.withDatabase { connection in
                try connection.withTransaction { connection in
                    try connection.query("SELECT outbox.replay($1)", [delivery])
                    // What was replayed, for the operator's confirmation.
                    let row = try connection.query("""
                        SELECT d.event_id, s.name, d.status
                        FROM outbox.deliveries AS d
                        JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
                        WHERE d.id = $1
                        """, [delivery])[0]
                    return OutputRecord([
                        "delivery_id": .integer(delivery),
                        "event_id": .text(try row.decode(String.self, at: 0)),
                        "subscription": .text(try row.decode(String.self, at: 1)),
                        "status": .text(try row.decode(String.self, at: 2)),
                    ])
                }
            }
            try TableOutput.printRow(record, json: json)
        } else {
            let replayed = try global.withDatabase(replayDead)
            try TableOutput.printRow(OutputRecord(["replayed": .integer(replayed)]), json: json)
        }
    }

    /// Replays dead letters batch by batch (`outbox.replay_dead_letters`, each
    /// batch its own statement), following the id cursor it returns.
    private func replayDead(_ connection: Connection) throws -> Int64 {
        let subscriptionID = try subscription.map { try connection.subscriptionID(named: $0) }
        var after: Int64 = 0
        var total: Int64 = 0
        while true {
            let ids = try connection.query(
                "SELECT outbox.replay_dead_letters($1, $2, $3)", [after, Self.batchSize, subscriptionID]
            ).rows.map { try $0.decode(Int64.self, at: 0) }
            guard let last = ids.last else { break }
            total += Int64(ids.count)
            after = last
        }
        return total
    }
}
