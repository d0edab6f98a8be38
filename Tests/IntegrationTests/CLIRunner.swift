import Foundation
import Testing
import TestSupport

/// How one run of an `outbox-relay` operator command ended, standard output and
/// standard error apart (so `--json` output parses while warnings go to stderr).
struct CLIResult: Sendable, CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String

    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }

    /// The non-empty lines of standard error.
    var errorLines: [Substring] { stderr.split(separator: "\n") }

    /// Standard output parsed as a JSON object.
    func jsonObject(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let value = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try #require(value as? [String: Any], "not a JSON object: \(stdout)", sourceLocation: sourceLocation)
    }

    /// Standard output parsed as a JSON array of objects.
    func jsonArray(sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        let value = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try #require(value as? [[String: Any]], "not a JSON array of objects: \(stdout)", sourceLocation: sourceLocation)
    }

    /// The `key: value` lines of a single record, by key.
    var fields: [String: String] {
        stdout.split(separator: "\n").reduce(into: [:]) { fields, line in
            guard let colon = line.firstIndex(of: ":") else { return }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }

    /// The data rows of a table (the header line dropped), split on runs of spaces.
    var tableRows: [[String]] {
        stdout.split(separator: "\n").dropFirst().map { line in
            line.split(separator: "  ", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }
}

/// Runs the built `outbox-relay` binary against a test database.
enum CLI {
    /// Runs `outbox-relay arguments…` with OUTBOX_DATABASE_URL naming `database`.
    /// No other OUTBOX_… variable of the test's environment leaks in; `environment` adds some.
    static func run(
        _ arguments: [String], database: TestDatabase, environment: [String: String] = [:],
        timeout: Duration = .seconds(30)
    ) async throws -> CLIResult {
        let settings = ["OUTBOX_DATABASE_URL": database.conninfo, "OUTBOX_LOG_FORMAT": "text"].merging(environment) { $1 }
        let run = try await ToolRun.run(
            [try RelayBinary.url().path] + arguments, environment: settings, withoutPrefix: "OUTBOX_",
            separateErrors: true, timeout: timeout)
        let result = CLIResult(status: run.status, stdout: run.output, stderr: run.errors)
        if run.timedOut {
            throw ProgramError(description: "outbox-relay \(arguments.joined(separator: " ")) did not finish within \(timeout): \(result)")
        }
        return result
    }
}
