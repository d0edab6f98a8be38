import ArgumentParser
import Foundation
import OutboxOperations
import OutboxRelay
import OutboxSQL

/// `outbox-relay deliveries …`: what happened to events, per subscription.
struct DeliveriesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries",
        abstract: "List deliveries (the default), or purge old dead letters.",
        subcommands: [DeliveriesListCommand.self, DeliveriesPurgeCommand.self],
        defaultSubcommand: DeliveriesListCommand.self
    )
}

/// A delivery's `status` column.
enum DeliveryStatus: String, CaseIterable, ExpressibleByArgument {
    case pending, delivering, succeeded, dead
}

/// `deliveries [--status S] [--subscription NAME] [--event ID] [--limit N]`: newest first.
struct DeliveriesListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List deliveries, newest first.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "Only deliveries in this state.")
    var status: DeliveryStatus?

    @Option(help: "Only deliveries to this subscription.")
    var subscription: String?

    @Option(help: "Only deliveries of this event_id.")
    var event: String?

    @Option(parsing: .unconditional, help: "At most this many (default 50).", transform: OperatorInput.positiveInteger)
    var limit: Int = 50

    static let columns = [
        "id", "event_id", "event_type", "subscription", "status", "attempts",
        "next_attempt_at", "last_status_code", "last_error",
    ]

    func run() throws {
        let json = try output.isJSON
        let records = try global.withDatabase { connection in
            if let subscription { _ = try connection.subscriptionID(named: subscription) }
            // The deliveries matching the filters, newest first.
            let result = try connection.query("""
                SELECT d.id, d.event_id, e.event_type, s.name, d.status, d.attempts, d.next_attempt_at,
                       d.last_status_code, d.last_error, d.created_at, d.completed_at
                FROM outbox.deliveries AS d
                JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
                LEFT JOIN outbox.events AS e ON e.id = d.event_seq
                WHERE ($1::text IS NULL OR d.status = $1)
                  AND ($2::text IS NULL OR s.name = $2)
                  AND ($3::text IS NULL OR d.event_id = $3)
                ORDER BY d.event_seq DESC, d.subscription_id
                LIMIT $4
                """, [status?.rawValue, subscription, event, limit])
            return try result.rows.map { row in
                let status = try row.decode(String.self, at: 4)
                return OutputRecord([
                    "id": OutputValue(try row.decode(Int64?.self, at: 0)),
                    "event_id": .text(try row.decode(String.self, at: 1)),
                    "event_type": OutputValue(try row.decode(String?.self, at: 2)),
                    "subscription": .text(try row.decode(String.self, at: 3)),
                    "status": .text(status),
                    "attempts": .integer(Int64(try row.decode(Int.self, at: 5))),
                    // When the next attempt is due means something only while pending.
                    "next_attempt_at": status == "pending" ? .timestamp(try row.decode(Date.self, at: 6)) : .null,
                    "last_status_code": OutputValue(try row.decode(Int64?.self, at: 7)),
                    "last_error": OutputValue(try row.decode(String?.self, at: 8)),
                    "created_at": .timestamp(try row.decode(Date.self, at: 9)),
                    "completed_at": .timestamp(try row.decode(Date?.self, at: 10)),
                ])
            }
        }
        try TableOutput.print(records, columns: Self.columns, whenEmpty: "no deliveries", json: json)
    }
}

/// `deliveries purge --dead --older-than 30d [--subscription NAME]`: deletes dead
/// letters (and their attempts) that died before now() - older-than.
struct DeliveriesPurgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete dead deliveries, and their attempts, that died longer ago than --older-than."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Purge dead deliveries (required: only dead letters are purged by hand).")
    var dead = false

    @Option(name: .customLong("older-than"), parsing: .unconditional,
            help: "Only those that died longer ago than this, e.g. 30d; 0s for all (env OUTBOX_OLDER_THAN; required).")
    var olderThan: String?

    @Option(help: "Only dead deliveries of this subscription.")
    var subscription: String?

    func validate() throws {
        guard dead else {
            throw ValidationError("purge needs --dead: only dead deliveries are purged by hand (succeeded ones expire by retention)")
        }
        _ = try age()
    }

    /// --older-than, else OUTBOX_OLDER_THAN: never a default, so nothing is purged by accident.
    private func age() throws -> Duration {
        guard let age = try EnvironmentSetting.parse(olderThan, "OUTBOX_OLDER_THAN", option: "older-than", DurationText.parse) else {
            throw ValidationError("purge needs --older-than (or OUTBOX_OLDER_THAN), e.g. 30d; 0s purges every dead delivery")
        }
        return age
    }

    func run() throws {
        let json = try output.isJSON
        let olderThan = try age()
        let purged = try global.withDatabase(DeadLetterPurge(subscription: subscription, olderThan: olderThan).run)
        try TableOutput.printRow(OutputRecord(["purged": .integer(purged)]), json: json)
    }
}
