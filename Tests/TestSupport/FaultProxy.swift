import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `scripts/drill/fault_proxy.py` (latency, bandwidth, resets, black holes) in
/// front of a local port, e.g. the test server's.
public final class FaultProxy {
    /// The port to connect to instead of the server's.
    public let port: Int
    private let controlPort: Int
    private let process = Process()
    private let directory: URL

    public init(upstreamPort: Int) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-proxy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("ports")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", repositoryRoot.appendingPathComponent("scripts/drill/fault_proxy.py").path,
            "--upstream", "127.0.0.1:\(upstreamPort)", "--port-file", portFile.path,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            if let text = try? String(contentsOf: portFile, encoding: .utf8) {
                let ports = text.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                if ports.count == 2 {
                    (port, controlPort) = (ports[0], ports[1])
                    return
                }
            }
            guard ContinuousClock.now < deadline else {
                kill(process.processIdentifier, SIGKILL)
                _ = ChildProcessExit.wait(for: process, timeout: .seconds(5))
                throw TestDatabaseError("fault_proxy.py did not report its ports within 10 s")
            }
            usleep(20_000)
        }
    }

    /// POSTs `/<path>` to the control interface, e.g. `faults?blackhole=1` or `clear`.
    public func control(_ path: String) throws {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = ["curl", "--silent", "--fail", "--max-time", "5", "-X", "POST", "http://127.0.0.1:\(controlPort)/\(path)"]
        curl.standardOutput = FileHandle.nullDevice
        try curl.run()
        guard ChildProcessExit.wait(for: curl, timeout: .seconds(10)) == 0 else {
            throw TestDatabaseError("fault proxy control \(path) failed")
        }
    }

    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        _ = ChildProcessExit.wait(for: process, timeout: .seconds(5))
        try? FileManager.default.removeItem(at: directory)
    }
}
