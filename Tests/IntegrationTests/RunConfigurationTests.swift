import Foundation
import Testing
import TestSupport

/// `outbox-relay run` refuses unusable settings at start, with a message naming
/// the setting, before it touches the database.
@Suite(.timeLimit(.minutes(1)))
struct RunConfigurationTests {
    @Test(arguments: [
        (["OUTBOX_TIMEOUT": "-5s"], "OUTBOX_TIMEOUT: \"-5s\" is negative"),
        (["OUTBOX_TIMEOUT": "0s"], "OUTBOX_TIMEOUT must be positive"),
        (["OUTBOX_RETRY_SCHEDULE": "5s,abc"], "OUTBOX_RETRY_SCHEDULE: \"abc\" is not a duration"),
        (["OUTBOX_ADMIN_LISTEN": "nope"], "OUTBOX_ADMIN_LISTEN: \"nope\" is not a listen address"),
        (["OUTBOX_ADMIN_LISTEN": "127.0.0.1:99999"], "has no valid port"),
        (["OUTBOX_LEASE": "5s"], "OUTBOX_LEASE (5s) must be longer than OUTBOX_TIMEOUT (10s)"),
        (["OUTBOX_MAX_IN_FLIGHT": "0"], "OUTBOX_MAX_IN_FLIGHT: \"0\" is not a positive whole number"),
        (["OUTBOX_ALLOW_PRIVATE_NETWORKS": "maybe"], "OUTBOX_ALLOW_PRIVATE_NETWORKS: \"maybe\" is not true or false"),
        (["OUTBOX_LOG_LEVEL": "loud"], "OUTBOX_LOG_LEVEL: \"loud\" is not a log level"),
        (["OUTBOX_BREAKER_COOLDOWN": "1m", "OUTBOX_BREAKER_MAX_COOLDOWN": "10s"], "OUTBOX_BREAKER_MAX_COOLDOWN must be at least"),
        (["OUTBOX_CA_BUNDLE": "/nonexistent/ca.pem"], "OUTBOX_CA_BUNDLE /nonexistent/ca.pem is not a readable file"),
        (["OUTBOX_RETENTION": "-1d"], "OUTBOX_RETENTION: \"-1d\" is negative"),
        (["OUTBOX_PARTITION_INTERVAL": "30s"], "OUTBOX_PARTITION_INTERVAL must be at least 1m"),
        (["OUTBOX_PARTITION_INTERVAL": "daily"], "OUTBOX_PARTITION_INTERVAL: \"daily\" is not a duration"),
    ])
    func badSettingsStopTheStart(environment: [String: String], message: String) async throws {
        let run = try await ToolRun.run(
            [try RelayBinary.url().path, "run"],
            environment: environment.merging(["OUTBOX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"]) { $1 },
            timeout: .seconds(20))
        #expect(run.status != 0)
        #expect(run.output.contains(message), "\(run.output)")
        #expect(!run.output.contains("cannot connect"), "settings are checked before the database")
    }

    @Test func aFlagWinsOverItsVariableAndIsNamedInTheError() async throws {
        let run = try await ToolRun.run(
            [try RelayBinary.url().path, "run", "--timeout", "soon"],
            environment: ["OUTBOX_TIMEOUT": "5s", "OUTBOX_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"],
            timeout: .seconds(20))
        #expect(run.status != 0)
        #expect(run.output.contains("--timeout: \"soon\" is not a duration"), "\(run.output)")
    }

    @Test func anUnreachableDatabaseIsReportedWithoutItsPassword() async throws {
        let run = try await ToolRun.run(
            [try RelayBinary.url().path, "run"],
            environment: ["OUTBOX_DATABASE_URL": "postgresql://relay:s3cret-pw@127.0.0.1:1/outbox", "OUTBOX_LOG_FORMAT": "json"],
            timeout: .seconds(20))
        #expect(run.status != 0)
        #expect(run.output.contains("cannot connect to PostgreSQL"), "\(run.output)")
        #expect(!run.output.contains("s3cret-pw"))
    }

    @Test func anUnmigratedDatabaseIsRefusedUntilMigrated() async throws {
        let database = try TestDatabase(migrated: false)
        let run = try await ToolRun.run(
            [try RelayBinary.url().path, "run"], environment: ["OUTBOX_DATABASE_URL": database.conninfo], timeout: .seconds(20))
        #expect(run.status != 0)
        #expect(run.output.contains("schema is not current"), "\(run.output)")
        #expect(run.output.contains("outbox-relay migrate"))
    }
}
