import Foundation
import TestSupport

/// A program could not be found or did not finish in time.
struct ProgramError: Error, CustomStringConvertible {
    let description: String
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
    static func run(_ arguments: [String], databaseURL: String, timeout: Duration = .seconds(120)) async throws -> ToolRun {
        try await ToolRun.run(
            [try url().path] + arguments,
            environment: ["OUTBOX_DATABASE_URL": databaseURL, "OUTBOX_LOG_FORMAT": "text"],
            timeout: timeout)
    }
}
