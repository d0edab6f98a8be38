import ArgumentParser
import OutboxSQL

/// `subscription update NAME …`: changes what is given, leaves the rest.
struct SubscriptionUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update",
        abstract: "Change a subscription's URL, event types or settings.",
        discussion: "Only what is given changes. --header adds or replaces one static header; "
            + "--clear-setting returns a setting to the relay's global default. "
            + "A change of --ordered applies to events published from then on."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The subscription's name.")
    var name: String

    @Option(help: "The new endpoint, http:// or https://.")
    var url: String?

    @Option(help: "The new event types (replacing the old): comma-separated or repeated.")
    var events: [String] = []

    @Option(help: "true to deliver events of one ordering key in order, false to not.", transform: OperatorInput.boolean)
    var ordered: Bool?

    @OptionGroup var settings: SubscriptionSettingOptions

    @Option(name: .customLong("remove-header"), help: "Stop sending this static header (repeatable).")
    var removeHeaders: [String] = []

    @Option(name: .customLong("clear-setting"), help: "Back to the global default (repeatable).")
    var clearSettings: [ClearableSetting] = []

    func validate() throws {
        if url == nil, events.isEmpty, ordered == nil, settings.isEmpty, removeHeaders.isEmpty, clearSettings.isEmpty {
            throw ValidationError("nothing to update: give --url, --events, --ordered, a setting, --header, --remove-header or --clear-setting")
        }
        let given: [(ClearableSetting, Bool)] = [
            (.timeout, settings.timeout != nil), (.retrySchedule, settings.retrySchedule != nil),
            (.maxInFlight, settings.maxInFlight != nil), (.rateLimit, settings.rateLimit != nil),
            (.headers, !settings.headers.isEmpty || !removeHeaders.isEmpty),
        ]
        for (setting, isGiven) in given where isGiven && clearSettings.contains(setting) {
            throw ValidationError("--clear-setting \(setting.rawValue) contradicts a new value for it: give one or the other")
        }
    }

    func run() throws {
        let json = try output.isJSON
        let update = statement()
        let headerChange = try headersStatement()
        let record = try global.withDatabase { connection in
            try connection.withTransaction { connection in
                if let update {
                    let result = try connection.query(update.sql, update.parameters)
                    guard result.rowsAffected == 1 else { throw OperatorError.noSubscription(name) }
                }
                if let headerChange {
                    let found = try connection.query(headerChange.sql, headerChange.parameters)[0].decode(Bool.self, at: 0)
                    guard found else { throw OperatorError.noSubscription(name) }
                }
                return try SubscriptionRecord.load(connection, named: name)
            }
        }
        if let url, let warning = OperatorInput.privateNetworkWarning(for: url) {
            OperatorInput.warn(warning)
        }
        try TableOutput.print(record.output, json: json)
    }

    /// The UPDATE for what was given besides static headers; nil when only
    /// headers change. Only fixed column names go into the SQL text; every value
    /// is a bind parameter.
    private func statement() -> (sql: String, parameters: [any PostgresEncodable])? {
        var parameters: [any PostgresEncodable] = [name]
        var assignments: [String] = []
        func assign(_ column: String, _ value: any PostgresEncodable, cast: String = "") {
            parameters.append(value)
            assignments.append("\(column) = $\(parameters.count)\(cast)")
        }
        if let url { assign("url", url) }
        if !events.isEmpty { assign("event_types", OperatorInput.patterns(events), cast: "::text[]") }
        if let ordered { assign("ordered", ordered) }
        if let timeout = settings.timeout { assign("timeout", timeout, cast: "::interval") }
        if let schedule = settings.retrySchedule { assign("retry_schedule", schedule, cast: "::interval[]") }
        if let maxInFlight = settings.maxInFlight { assign("max_in_flight", maxInFlight) }
        if let rateLimit = settings.rateLimit { assign("rate_limit", rateLimit, cast: "::numeric") }
        assignments += ClearableSetting.allCases.filter(clearSettings.contains).map(\.assignment)
        guard !assignments.isEmpty else { return nil }
        let sql = "UPDATE outbox.subscriptions\nSET " + assignments.joined(separator: ",\n    ") + "\nWHERE name = $1"
        return (sql, parameters)
    }

    /// The change of static headers, when one was given: every spelling of a
    /// removed or replaced name goes (header names are case-insensitive), then the
    /// new values are added. Through `outbox.change_subscription_headers`, which
    /// runs as the schema's owner: it reads the old values, which the operator's
    /// role may not.
    private func headersStatement() throws -> (sql: String, parameters: [any PostgresEncodable])? {
        guard !settings.headers.isEmpty || !removeHeaders.isEmpty else { return nil }
        let replaced = (removeHeaders + settings.headers.map(\.name)).map { $0.lowercased() }
        return ("SELECT outbox.change_subscription_headers($1, $2::text[], $3::jsonb)",
                [name, replaced, try HeaderArgument.json(settings.headers)])
    }
}
