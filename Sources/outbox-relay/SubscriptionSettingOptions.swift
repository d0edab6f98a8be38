import ArgumentParser
import OutboxSQL

/// The per-subscription delivery settings of SPEC §5, shared by `subscription add`
/// and `subscription update`. Unset means the relay's global default.
///
/// Deliberately not read from OUTBOX_TIMEOUT, OUTBOX_RETRY_SCHEDULE or
/// OUTBOX_MAX_IN_FLIGHT: those name the relay's global defaults, and copying them
/// into every new subscription would pin it to today's default.
struct SubscriptionSettingOptions: ParsableArguments {
    // `.unconditional` so that `--timeout -5s` reaches the duration parser and is
    // refused as negative, rather than read as an unknown short option.
    @Option(parsing: .unconditional, help: "Time limit of one attempt, e.g. 5s (default: the relay's).",
            transform: OperatorInput.duration)
    var timeout: Duration?

    @Option(name: .customLong("retry-schedule"), parsing: .unconditional,
            help: "Waits before each retry, then dead, e.g. 5s,1m,30m (default: the relay's).",
            transform: OperatorInput.durationList)
    var retrySchedule: [Duration]?

    @Option(name: .customLong("max-in-flight"), parsing: .unconditional,
            help: "Requests in flight at once, all replicas together (default: the relay's).",
            transform: OperatorInput.positiveInteger)
    var maxInFlight: Int?

    @Option(name: .customLong("rate-limit"), parsing: .unconditional,
            help: "At most this many requests per second, e.g. 10 or 0.5 (default: none).",
            transform: OperatorInput.rate)
    var rateLimit: Double?

    @Option(name: .customLong("header"), help: "A static header sent with every request, name=value (repeatable).",
            transform: HeaderArgument.parse)
    var headers: [HeaderArgument] = []

    var isEmpty: Bool {
        timeout == nil && retrySchedule == nil && maxInFlight == nil && rateLimit == nil && headers.isEmpty
    }
}

/// A setting `subscription update --clear-setting` returns to the global default.
enum ClearableSetting: String, CaseIterable, ExpressibleByArgument, Hashable {
    case timeout
    case retrySchedule = "retry-schedule"
    case maxInFlight = "max-in-flight"
    case rateLimit = "rate-limit"
    case headers
}
