import Logging

/// Logs a database outage once when it starts and once when it ends, and says
/// how long to wait before the next try.
struct DatabaseHealth {
    let logger: Logger
    let activity: String
    private var failures = 0

    init(logger: Logger, activity: String) {
        self.logger = logger
        self.activity = activity
    }

    /// 100 ms, doubling per failure, at most 5 s.
    var backoff: Duration { .milliseconds(min(5_000, 100 << min(failures, 6))) }

    mutating func failed(_ error: any Error) {
        RelayMetrics.databaseError(activity: activity)
        if failures == 0 {
            logger.error("database error while \(activity); retrying", metadata: ["error": "\(error)"])
        }
        failures += 1
    }

    mutating func succeeded() {
        if failures > 0 {
            logger.notice("database reachable again; \(activity) resumed", metadata: ["failed_tries": "\(failures)"])
        }
        failures = 0
    }
}
