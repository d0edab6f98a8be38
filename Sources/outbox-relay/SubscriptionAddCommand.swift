import ArgumentParser
import OutboxSQL

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
        let secret = EnvironmentSetting.value(self.secret, "OUTBOX_SECRET")
        let headers = try HeaderArgument.json(settings.headers)
        // Subscribe and apply the settings together: a refused setting leaves nothing behind.
        let created = try global.withDatabase { connection in
            try connection.withTransaction { connection in
                let result: QueryResult
                do {
                    result = try connection.query(
                        "SELECT outbox.subscribe($1, $2, $3::text[], $4, $5)",
                        [name, url, OperatorInput.patterns(events), secret, ordered])
                } catch let error as PostgresError where error.isUniqueViolation {
                    throw OperatorError("a subscription named \"\(name)\" already exists: change it with `outbox-relay subscription update`")
                }
                if !settings.isEmpty {
                    try connection.query("""
                        UPDATE outbox.subscriptions
                        SET timeout = $2::interval,
                            retry_schedule = $3::interval[],
                            max_in_flight = $4,
                            rate_limit = $5::numeric,
                            headers = $6::jsonb
                        WHERE name = $1
                        """, [name, settings.timeout, settings.retrySchedule, settings.maxInFlight, settings.rateLimit, headers])
                }
                return try result[0].decode(String.self, at: 0)
            }
        }
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
