import ArgumentParser
import Logging
import OutboxRelay
import OutboxSQL

/// Options every command shares: where the database is and how to log.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("database-url"),
            help: "PostgreSQL URL or key=value string (env OUTBOX_DATABASE_URL; else libpq's PG… variables).")
    var databaseURL: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error (env OUTBOX_LOG_LEVEL; default info).")
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: "json or text (env OUTBOX_LOG_FORMAT; default text on a terminal, else json).")
    var logFormat: String?

    /// The database to use; the error never shows the URL.
    func databaseTarget() throws -> ConnectionTarget {
        do {
            return try ConnectionTarget(EnvironmentSetting.value(databaseURL, "OUTBOX_DATABASE_URL") ?? "")
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Sets up swift-log once and returns the process's logger.
    func bootstrapLogging(label: String = "outbox-relay") throws -> Logger {
        let level = try EnvironmentSetting.parse(logLevel, "OUTBOX_LOG_LEVEL", option: "log-level") { text in
            guard let level = Logger.Level(rawValue: text.lowercased()) else {
                throw ConfigurationError(message: "\"\(text)\" is not a log level: use trace, debug, info, notice, warning or error")
            }
            return level
        } ?? .info
        let format = try EnvironmentSetting.parse(logFormat, "OUTBOX_LOG_FORMAT", option: "log-format") { text in
            guard let format = LogFormat(rawValue: text.lowercased()) else {
                throw ConfigurationError(message: "\"\(text)\" is not a log format: use json or text")
            }
            return format
        } ?? LogFormat.forStandardError
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == .json
                ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}
