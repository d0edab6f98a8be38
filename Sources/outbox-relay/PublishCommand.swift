import ArgumentParser
import OutboxSQL

/// `outbox-relay publish --type T --data JSON …`: publishes one event through
/// outbox.publish, as a host application would, and prints its event_id.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish an event (for tests and manual fixes) and print its event_id."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "The event type, e.g. order.created.")
    var type: String

    @Option(help: "The payload: JSON text, e.g. '{\"id\": 42}'.")
    var data: String

    @Option(help: "Ordering key: ordered subscriptions deliver events of one key in order.")
    var key: String?

    @Option(help: "The event_id (idempotency key; sent as webhook-id); generated when absent.")
    var id: String?

    @Option(name: .customLong("header"), help: "An extra HTTP header for this event, name=value (repeatable).",
            transform: HeaderArgument.parse)
    var headers: [HeaderArgument] = []

    func run() throws {
        let json = try output.isJSON
        let headers = self.headers.isEmpty ? nil : try HeaderArgument.json(self.headers)
        let published = try global.withDatabase { connection in
            try connection.withTransaction { connection in
                let eventID: String
                do {
                    eventID = try connection.query(
                        "SELECT outbox.publish($1, $2::jsonb, ordering_key => $3, headers => $4::jsonb, event_id => $5)",
                        [type, PostgresJSON(text: data), key, headers, id])[0].decode(String.self, at: 0)
                } catch let error as PostgresError where error.isUniqueViolation {
                    throw OperatorError("an event with event_id \"\(id ?? "")\" already exists (event_id is an idempotency key)")
                }
                // The fan-out trigger has created the deliveries by now.
                let deliveries = try connection.query(
                    "SELECT count(*) FROM outbox.deliveries WHERE event_id = $1", [eventID])[0].decode(Int64.self, at: 0)
                return (eventID: eventID, deliveries: deliveries)
            }
        }
        try TableOutput.printRow(
            OutputRecord(["event_id": .text(published.eventID), "deliveries": .integer(published.deliveries)]), json: json)
    }
}
