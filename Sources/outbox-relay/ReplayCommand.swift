import ArgumentParser
import Foundation
import OutboxOperations

/// `outbox-relay replay --delivery ID | --dead [--subscription NAME] [--since T] [--until T]`: sends
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

    @Option(help: "With --dead: only those that died at or after this RFC 3339 time, e.g. 2026-01-31T12:00:00Z.",
            transform: OperatorInput.timestamp)
    var since: Date?

    @Option(help: "With --dead: only those that died before this RFC 3339 time.", transform: OperatorInput.timestamp)
    var until: Date?

    func validate() throws {
        guard (delivery != nil) != dead else {
            throw ValidationError("give exactly one of --delivery ID or --dead")
        }
        if (subscription != nil || since != nil || until != nil) && !dead {
            throw ValidationError("--subscription, --since and --until go with --dead (a delivery id already names one delivery)")
        }
    }

    func run() throws {
        let json = try output.isJSON
        if let delivery {
            let replayed = try global.withDatabase(DeliveryReplay(delivery: delivery).run)
            try TableOutput.printRow(OutputRecord([
                "delivery_id": .integer(delivery),
                "event_id": .text(replayed.eventID),
                "subscription": .text(replayed.subscription),
                "status": .text(replayed.status),
            ]), json: json)
        } else {
            let replayed = try global.withDatabase(DeadLetterReplay(subscription: subscription, since: since, until: until).run)
            try TableOutput.printRow(OutputRecord(["replayed": .integer(replayed)]), json: json)
        }
    }
}
