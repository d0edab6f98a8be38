import ArgumentParser
import OutboxOperations

/// `outbox-relay subscription …`: the webhook endpoints and what they receive.
struct SubscriptionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscription",
        abstract: "Add, inspect, change and remove webhook subscriptions.",
        subcommands: [
            SubscriptionAddCommand.self, SubscriptionListCommand.self, SubscriptionShowCommand.self,
            SubscriptionUpdateCommand.self, SubscriptionEnableCommand.self, SubscriptionDisableCommand.self,
            SubscriptionRemoveCommand.self, SubscriptionRotateSecretCommand.self,
        ]
    )
}

/// `subscription list`: every subscription, by name. Never a secret.
struct SubscriptionListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the subscriptions.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let json = try output.isJSON
        let records = try global.withDatabase(SubscriptionListing.all)
        try TableOutput.print(records.map(\.output), columns: SubscriptionListing.Record.listColumns,
                              whenEmpty: "no subscriptions (add one with `outbox-relay subscription add`)", json: json)
    }
}

/// `subscription show NAME`: settings and health of one subscription. Never its secret.
struct SubscriptionShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show one subscription's settings and health (never its secret).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The subscription's name.") var name: String

    func run() throws {
        let json = try output.isJSON
        let record = try global.withDatabase { connection in
            var record = try SubscriptionListing.one(connection, named: name).output
            if let health = try SubscriptionHealth.load(connection, name: name).first {
                record.append(health.counters)
            }
            return record
        }
        try TableOutput.print(record, json: json)
    }
}

/// `subscription enable NAME`: deliveries resume, including those that waited.
struct SubscriptionEnableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable", abstract: "Enable a subscription: new events match it again and its waiting deliveries resume.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The subscription's name.") var name: String

    func run() throws {
        let json = try output.isJSON
        let record = try global.withDatabase(SubscriptionSwitch.enable(name).run)
        try TableOutput.printRow(Self.state(record), json: json)
    }

    /// What enable and disable print: the name and whether it is enabled now.
    static func state(_ record: SubscriptionListing.Record) -> OutputRecord {
        OutputRecord([
            "name": .text(record.name),
            "enabled": .boolean(record.enabled),
            "disabled_reason": OutputValue(record.disabledReason),
        ])
    }
}

/// `subscription disable NAME [--reason TEXT]`: no new deliveries; pending ones wait.
struct SubscriptionDisableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable",
        abstract: "Disable a subscription: new events skip it; its pending deliveries wait, not charged attempts.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The subscription's name.") var name: String
    @Option(help: "Why, recorded as disabled_reason.") var reason = "disabled by an operator"

    func run() throws {
        let json = try output.isJSON
        let record = try global.withDatabase(SubscriptionSwitch.disable(name, reason: reason).run)
        try TableOutput.printRow(SubscriptionEnableCommand.state(record), json: json)
    }
}

/// `subscription remove NAME`: deletes it with its unfinished deliveries and its
/// endpoint state (`SubscriptionRemoval`).
struct SubscriptionRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Delete a subscription with its deliveries and their attempts.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The subscription's name.") var name: String

    func run() throws {
        let json = try output.isJSON
        let removed = try global.withDatabase(SubscriptionRemoval(subscription: name).run)
        try TableOutput.printRow(OutputRecord([
            "name": .text(name),
            "removed": .boolean(true),
            "deliveries_removed": .integer(removed),
        ]), json: json)
    }
}
