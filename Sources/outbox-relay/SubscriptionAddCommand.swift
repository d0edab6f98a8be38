import ArgumentParser
import OutboxOperations

/// `subscription add NAME --url URL --events T[,T…] …`: creates a subscription
/// and prints its signing secret, the only time any command shows it.
struct SubscriptionAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Create a subscription and print its signing secret (shown only this once).",
        discussion: "The secret is generated when --secret (or OUTBOX_SECRET) is not given. "
            + "Settings left out use the relay's global defaults."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "A unique name: letters, digits and _ . : - (at most 128).")
    var name: String

    @Option(help: "The endpoint, http:// or https://.")
    var url: String

    @Option(help: "Event types it receives: exact (order.created), prefix (order.*) or *; comma-separated or repeated.")
    var events: [String]

    @Option(help: "Signing secret whsec_… (env OUTBOX_SECRET, which keeps it out of the process list); generated when absent.")
    var secret: String?

    @Flag(help: "Deliver events of one ordering key in order.")
    var ordered = false

    @OptionGroup var settings: SubscriptionSettingOptions

    func run() throws {
        let json = try output.isJSON
        var creation = SubscriptionCreation(name: name, url: url, eventTypes: OperatorInput.patterns(events))
        creation.secret = EnvironmentSetting.value(secret, "OUTBOX_SECRET")
        creation.ordered = ordered
        creation.headers = try HeaderArgument.json(settings.headers)
        creation.timeout = settings.timeout
        creation.retrySchedule = settings.retrySchedule
        creation.maxInFlight = settings.maxInFlight
        creation.rateLimit = settings.rateLimit
        let created = try global.withDatabase(creation.run)
        if let warning = OperatorInput.privateNetworkWarning(for: url) {
            OperatorInput.warn(warning)
        }
        let record = OutputRecord(["name": .text(name), "secret": .text(created)])
        if json {
            print(try TableOutput.json(record))
        } else {
            print("created subscription \"\(name)\"; its signing secret (shown only now, keep it safe):")
            print(created)
        }
    }
}
