import Foundation
import Synchronization
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
        var variables = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OUTBOX_") }
        variables["OUTBOX_DATABASE_URL"] = database.conninfo
        variables["OUTBOX_LOG_FORMAT"] = "text"
        variables.merge(environment) { $1 }
        let executable = try RelayBinary.url()
        let environment = variables
        return try await withCheckedThrowingContinuation { continuation in
            // A thread of its own: waiting for the process never blocks Swift's cooperative pool.
            let thread = Thread {
                continuation.resume(with: Result {
                    try runBlocking(executable, arguments, environment: environment, timeout: timeout)
                })
            }
            thread.name = "cli-test-\(arguments.first ?? "")"
            thread.start()
        }
    }

    private static func runBlocking(
        _ executable: URL, _ arguments: [String], environment: [String: String], timeout: Duration
    ) throws -> CLIResult {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()

        // SIGKILL, not terminate(): children of test threads may have SIGTERM blocked.
        let pid = process.processIdentifier
        let timedOut = Mutex(false)
        let watchdog = DispatchWorkItem {
            timedOut.withLock { $0 = true }
            kill(pid, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(
            deadline: .now() + .milliseconds(Int(timeout.components.seconds) * 1000), execute: watchdog)
        // Read standard error on another thread so neither pipe can fill up and stall the child.
        let errorData = ErrorPipeReader(stderr.fileHandleForReading)
        let outputData = stdout.fileHandleForReading.readDataToEndOfFile()
        let status = ChildProcessExit.wait(for: process) ?? -1
        watchdog.cancel()
        let result = CLIResult(
            status: status,
            stdout: String(decoding: outputData, as: UTF8.self),
            stderr: String(decoding: errorData.wait(), as: UTF8.self))
        if timedOut.withLock({ $0 }) {
            throw ProgramError(description: "outbox-relay \(arguments.joined(separator: " ")) did not finish within \(timeout): \(result)")
        }
        return result
    }
}

/// Reads a pipe to its end on a thread of its own.
private final class ErrorPipeReader: @unchecked Sendable {
    // Safe to share: `data` is written once by the reader thread before it
    // signals `done`, and read only after waiting for `done`.
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
        thread.start()
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}
