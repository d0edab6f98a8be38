import Foundation
import Synchronization
import TestSupport

/// How a program run by a test ended.
struct ProgramRun: Sendable {
    let status: Int32
    /// Standard output and standard error, interleaved as written.
    let output: String
}

/// A program could not be found or did not finish in time.
struct ProgramError: Error, CustomStringConvertible {
    let description: String
}

/// Runs `executable` to completion on a thread of its own (so waiting never blocks
/// Swift's cooperative pool) and kills it if it outlives `timeout`.
/// `environment` is added to this process's environment.
func runProgram(
    _ executable: URL, _ arguments: [String], environment: [String: String] = [:],
    timeout: Duration = .seconds(120)
) async throws -> ProgramRun {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result {
                try runProgramBlocking(executable, arguments, environment: environment, timeout: timeout)
            })
        }
        thread.name = "test-program-\(executable.lastPathComponent)"
        thread.start()
    }
}

private func runProgramBlocking(
    _ executable: URL, _ arguments: [String], environment: [String: String], timeout: Duration
) throws -> ProgramRun {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    try process.run()

    let timedOut = Mutex(false)
    let watchdog = DispatchWorkItem {
        guard process.isRunning else { return }
        timedOut.withLock { $0 = true }
        process.terminate()
    }
    let (seconds, attoseconds) = timeout.components
    DispatchQueue.global().asyncAfter(
        deadline: .now() + .milliseconds(Int(seconds * 1000 + attoseconds / 1_000_000_000_000_000)), execute: watchdog)
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let status = ChildProcessExit.wait(for: process) ?? -1
    watchdog.cancel()

    let text = String(decoding: data, as: UTF8.self)
    if timedOut.withLock({ $0 }) {
        throw ProgramError(description: "\(executable.lastPathComponent) \(arguments.joined(separator: " ")) did not finish within \(timeout); it printed:\n\(text)")
    }
    return ProgramRun(status: status, output: text)
}

/// The `outbox-relay` executable built next to the test bundle.
enum RelayBinary {
    /// The package's root directory (where Package.swift is).
    static let packageRoot = repositoryRoot

    /// The binary: `OUTBOX_RELAY_BINARY` if set, else the build directory holding the
    /// running test bundle, else `.build/debug`. Throws when it is not built.
    static func url() throws -> URL {
        let fileManager = FileManager.default
        if let override = ProcessInfo.processInfo.environment["OUTBOX_RELAY_BINARY"], !override.isEmpty {
            guard fileManager.isExecutableFile(atPath: override) else {
                throw ProgramError(description: "OUTBOX_RELAY_BINARY=\(override) is not an executable file")
            }
            return URL(fileURLWithPath: override)
        }
        var candidates: [URL] = []
        let bundleHosts = [
            Bundle.main.bundleURL,
            URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent(),
        ]
        for start in bundleHosts {
            // Climb out of an .xctest bundle (macOS) to the build directory that holds it.
            var directory = start
            while directory.path.contains(".xctest"), directory.path != "/" {
                directory = directory.deletingLastPathComponent()
            }
            candidates.append(directory.appendingPathComponent("outbox-relay"))
        }
        candidates.append(packageRoot.appendingPathComponent(".build/debug/outbox-relay"))
        if let found = candidates.first(where: { fileManager.isExecutableFile(atPath: $0.path) }) {
            return found
        }
        throw ProgramError(description: """
            the outbox-relay binary is not built (looked at \(candidates.map(\.path).joined(separator: ", "))): \
            run `swift build` first, or set OUTBOX_RELAY_BINARY to its path
            """)
    }

    /// Runs `outbox-relay` with `arguments` against `databaseURL` (given as
    /// OUTBOX_DATABASE_URL), logging as text.
    static func run(_ arguments: [String], databaseURL: String, timeout: Duration = .seconds(120)) async throws -> ProgramRun {
        try await runProgram(
            try url(), arguments,
            environment: ["OUTBOX_DATABASE_URL": databaseURL, "OUTBOX_LOG_FORMAT": "text"],
            timeout: timeout)
    }
}
