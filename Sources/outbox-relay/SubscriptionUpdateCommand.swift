import ArgumentParser
import OutboxOperations

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
        let record = try global.withDatabase(try change().run)
        if let url, let warning = OperatorInput.privateNetworkWarning(for: url) {
            OperatorInput.warn(warning)
        }
        try TableOutput.print(record.output, json: json)
    }

    /// What was given, as the update operation takes it.
    private func change() throws -> SubscriptionUpdate {
        var update = SubscriptionUpdate(subscription: name)
        update.url = url
        update.eventTypes = events.isEmpty ? nil : OperatorInput.patterns(events)
        update.ordered = ordered
        let cleared = Set(clearSettings)
        update.timeout = cleared.contains(.timeout) ? .reset : SettingChange(settings.timeout)
        update.retrySchedule = cleared.contains(.retrySchedule) ? .reset : SettingChange(settings.retrySchedule)
        update.maxInFlight = cleared.contains(.maxInFlight) ? .reset : SettingChange(settings.maxInFlight)
        update.rateLimit = cleared.contains(.rateLimit) ? .reset : SettingChange(settings.rateLimit)
        update.clearHeaders = cleared.contains(.headers)
        update.removeHeaders = removeHeaders
        update.addHeaders = settings.headers.isEmpty ? nil : try HeaderArgument.json(settings.headers)
        return update
    }
}
