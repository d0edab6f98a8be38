import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a tool (a Python script, schemathesis, the browser story) to completion
/// without blocking the cooperative pool; its stdout and stderr come back
/// together. Past `timeout` it is stopped, SIGTERM then SIGKILL, as a process
/// group when it leads one (so a browser it started goes with it).
public enum ToolRun {
    public static func run(
        _ arguments: [String], in directory: URL? = nil, environment extra: [String: String] = [:], timeout: Duration
    ) async throws -> (status: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("tool-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // Waiting blocks, so it gets its own thread rather than one of the cooperative pool's.
        let status: Int32 = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                if let status = ChildProcessExit.wait(for: process, timeout: timeout) {
                    return continuation.resume(returning: status)
                }
                stop(process, with: SIGTERM)
                if let status = ChildProcessExit.wait(for: process, timeout: .seconds(5)) {
                    return continuation.resume(returning: status)
                }
                stop(process, with: SIGKILL)
                continuation.resume(returning: ChildProcessExit.wait(for: process) ?? -1)
            }
        }
        return (status, String(decoding: try Data(contentsOf: output), as: UTF8.self))
    }

    private static func stop(_ process: Process, with signal: Int32) {
        let pid = process.processIdentifier
        if kill(-pid, signal) != 0 { kill(pid, signal) }
    }
}
