import Foundation
import Synchronization

/// One HTTP request as logged by `scripts/testing/webhook_receiver.py`.
public struct ReceivedRequest: Sendable, Decodable {
    /// When the receiver had read the request, in milliseconds since 1970.
    public let receivedAtMs: Double
    /// The request target, query included (e.g. `/ok/orders`).
    public let path: String
    public let method: String
    /// Header names are lowercased; repeated headers are joined with ", ".
    public let headers: [String: String]
    public let body: String
    /// The status code the receiver answered.
    public let status: Int

    /// The `webhook-id` header: the event's id, the same on every retry.
    public var webhookID: String? { headers["webhook-id"] }

    enum CodingKeys: String, CodingKey {
        case receivedAtMs = "received_at_ms"
        case path, method, headers, body, status
    }
}

/// What went wrong with the test receiver, said so that a failing test explains itself.
public struct TestReceiverError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// A real HTTP/1.1 webhook receiver in its own process (`scripts/testing/webhook_receiver.py`).
///
/// What it answers depends on the path (`/ok`, `/status/<code>`, `/fail-first/<n>/…`,
/// `/retry-after/<secs>/…`, `/sleep/<ms>/…`, `/switch/<name>`, `/big/<bytes>`; see the
/// script), so one receiver serves every subscription of a test. Every request is
/// logged and can be read back with ``requests()`` or awaited with
/// ``waitForRequests(count:matching:timeout:)``. The process stops in ``stop()`` or
/// when the receiver is deinitialised.
public final class TestReceiver: Sendable {
    /// The TCP port on 127.0.0.1.
    public let port: Int
    /// The JSON-lines log the receiver appends to.
    public let logURL: URL

    private let directory: URL
    /// The receiver process until ``stop()`` took it; the lock makes stop safe to call
    /// from any thread, more than once.
    private let process: Mutex<Process?>

    /// Starts a receiver on a free port and waits (at most 10 s) until it listens.
    public init() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("outbox-test-receiver-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("port")
        let logURL = directory.appendingPathComponent("requests.jsonl")
        let stderrURL = directory.appendingPathComponent("stderr.log")
        try Data().write(to: logURL)
        try Data().write(to: stderrURL)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", repositoryRoot.appendingPathComponent("scripts/testing/webhook_receiver.py").path,
            "--port-file", portFile.path,
            "--log", logURL.path,
            "--exit-with-parent",
        ]
        process.currentDirectoryURL = repositoryRoot
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw TestReceiverError("could not start python3 webhook_receiver.py: \(error)")
        }

        let port: Int
        do {
            port = try Self.waitForPort(in: portFile, of: process, stderr: stderrURL)
        } catch {
            Self.terminate(process)
            try? FileManager.default.removeItem(at: directory)
            throw error
        }

        self.port = port
        self.logURL = logURL
        self.directory = directory
        self.process = Mutex(process)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// `http://127.0.0.1:<port><path>`; `path` starts with `/`, e.g. `url("/fail-first/2/orders")`.
    public func url(_ path: String) -> String {
        "http://127.0.0.1:\(port)\(path)"
    }

    /// Every request logged so far, in arrival order.
    public func requests() throws -> [ReceivedRequest] {
        let data = try Data(contentsOf: logURL)
        let decoder = JSONDecoder()
        var result: [ReceivedRequest] = []
        var lineStart = data.startIndex
        // Only complete lines: the receiver may be writing the last one right now.
        while let newline = data[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
            let line = data[lineStart..<newline]
            lineStart = data.index(after: newline)
            if line.isEmpty { continue }
            do {
                result.append(try decoder.decode(ReceivedRequest.self, from: line))
            } catch {
                throw TestReceiverError(
                    "unreadable line in \(logURL.path): \(String(decoding: line, as: UTF8.self)) (\(error))")
            }
        }
        return result
    }

    /// Waits until at least `count` logged requests satisfy `matching`, polling the log
    /// every 50 ms; returns those requests, or throws after `timeout` saying how many came.
    public func waitForRequests(
        count: Int,
        matching: (ReceivedRequest) -> Bool = { _ in true },
        timeout: Duration
    ) async throws -> [ReceivedRequest] {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let matched = try requests().filter(matching)
            if matched.count >= count {
                return matched
            }
            if clock.now >= deadline {
                let loggedInAll = try requests().count
                let lastMatching = matched.suffix(5).map { "\($0.method) \($0.path) -> \($0.status)" }
                throw TestReceiverError(
                    "timed out after \(timeout): \(matched.count) of \(count) expected requests arrived "
                        + "(\(loggedInAll) logged in all; last matching: \(lastMatching))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Sets what `/switch/<name>` answers from now on (it answers 204 until set).
    public func setSwitch(_ name: String, status: Int) throws {
        let encoded = name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? name
        let result = try Self.run([
            "curl", "--silent", "--show-error", "--fail", "--max-time", "5", "-X", "POST",
            url("/_control/switch/\(encoded)?status=\(status)"),
        ])
        guard result.status == 0 else {
            throw TestReceiverError("setting switch \(name) to \(status) failed: \(result.output)")
        }
    }

    /// Checks every logged request (or those whose path starts with `pathPrefix`) with the
    /// official Standard Webhooks library: a request passes if any of `secrets` verifies it.
    /// `expectSignatures` also requires that many `v1,` signatures on each request.
    /// Returns whether all passed and the verifier's report.
    public func verifySignatures(
        secrets: [String],
        pathPrefix: String? = nil,
        expectSignatures: Int? = nil
    ) throws -> (ok: Bool, output: String) {
        var arguments = [
            "python3", repositoryRoot.appendingPathComponent("scripts/testing/verify_webhooks.py").path, logURL.path,
        ]
        for secret in secrets {
            arguments += ["--secret", secret]
        }
        if let pathPrefix {
            arguments += ["--path-prefix", pathPrefix]
        }
        if let expectSignatures {
            arguments += ["--expect-signatures", String(expectSignatures)]
        }
        let result = try Self.run(arguments)
        return (result.status == 0, result.output)
    }

    /// Stops the receiver (SIGTERM, then SIGKILL after 5 s) and waits for it. The log stays
    /// readable until the receiver is deinitialised.
    public func stop() {
        let running = process.withLock { process -> Process? in
            defer { process = nil }
            return process
        }
        if let running {
            Self.terminate(running)
        }
    }

    // MARK: - Helpers

    /// Polls the port file every 20 ms for at most 10 s. Polling is fine here: a test's
    /// setup, bounded, and the receiver writes the file atomically.
    private static func waitForPort(in portFile: URL, of process: Process, stderr: URL) throws -> Int {
        let deadline = Date().addingTimeInterval(10)
        while true {
            if let text = try? String(contentsOf: portFile, encoding: .utf8),
               let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return port
            }
            if !process.isRunning || Date() > deadline {
                let what = process.isRunning
                    ? "did not report its port within 10 s"
                    : "exited with status \(process.terminationStatus)"
                let output = (try? String(contentsOf: stderr, encoding: .utf8)) ?? ""
                throw TestReceiverError(
                    "webhook_receiver.py \(what); is python3 installed (scripts/install-deps)? stderr: \(output)")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    private static func terminate(_ process: Process) {
        if ChildProcessExit.hasExited(process) { return }
        kill(process.processIdentifier, SIGTERM)
        if ChildProcessExit.wait(for: process, timeout: .seconds(5)) == nil {
            kill(process.processIdentifier, SIGKILL)
            _ = ChildProcessExit.wait(for: process)
        }
    }

    /// Runs a command found on PATH, returning its exit status and its stdout and stderr together.
    private static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        let status = ChildProcessExit.wait(for: process, timeout: .seconds(60)) ?? -1
        return (status, String(decoding: output, as: UTF8.self))
    }
}
