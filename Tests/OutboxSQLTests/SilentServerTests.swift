import Foundation
import OutboxSQL
import TestSupport
import Testing

/// A server or network that goes silent (a hung pooler, a dropped route) never
/// hangs a statement: past its deadline the connection is closed, the statement
/// fails with `.connectionLost`, and the next one runs on a new connection.
/// Found by the network-fault drill (`scripts/drills network`).
@Suite(.timeLimit(.minutes(1)))
struct SilentServerTests {
    @Test func aStatementPastItsDeadlineFailsAndTheConnectionComesBack() async throws {
        let database = try TestDatabase(migrated: false)
        let proxy = try FaultProxy(upstreamPort: try Self.serverPort())
        defer { proxy.stop() }
        let connection = try Connection(ConnectionTarget(
            "host=127.0.0.1 port=\(proxy.port) user=\(ProcessInfo.processInfo.environment["PGUSER"] ?? "postgres") dbname=\(database.name)"))
        connection.statementDeadline = .seconds(1)
        #expect(try connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)

        try proxy.control("faults?blackhole=1")
        let start = ContinuousClock.now
        #expect {
            try connection.query("SELECT 2")
        } throws: { error in
            (error as? PostgresError)?.code == .connectionLost
        }
        #expect(ContinuousClock.now - start < .seconds(5), "the deadline, not TCP, ended the wait")

        try proxy.control("clear")
        try connection.ensureConnected()
        #expect(try connection.query("SELECT 3")[0].decode(Int.self, at: 0) == 3)
    }

    @Test func aDatabaseClientRecoversFromASilentServer() async throws {
        let database = try TestDatabase(migrated: false)
        let proxy = try FaultProxy(upstreamPort: try Self.serverPort())
        defer { proxy.stop() }
        let client = DatabaseClient(
            target: try ConnectionTarget("host=127.0.0.1 port=\(proxy.port) user=\(ProcessInfo.processInfo.environment["PGUSER"] ?? "postgres") dbname=\(database.name)"),
            name: "silent", statementDeadline: .seconds(1))
        defer { client.close() }
        #expect(try await client.run { try $0.query("SELECT 1")[0].decode(Int.self, at: 0) } == 1)
        try proxy.control("faults?blackhole=1")
        await #expect(throws: PostgresError.self) { try await client.run { _ = try $0.query("SELECT 2") } }
        try proxy.control("clear")
        #expect(try await client.run { try $0.query("SELECT 3")[0].decode(Int.self, at: 0) } == 3)
    }

    static func serverPort() throws -> Int {
        guard let port = ProcessInfo.processInfo.environment["PGPORT"].flatMap(Int.init) else {
            throw TestDatabaseError("PGPORT is not set: run the tests with scripts/test")
        }
        return port
    }
}

/// `scripts/drill/fault_proxy.py` in front of the test server.
private final class FaultProxy {
    let port: Int
    private let controlPort: Int
    private let process = Process()
    private let directory: URL

    init(upstreamPort: Int) throws {
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
    func control(_ path: String) throws {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = ["curl", "--silent", "--fail", "--max-time", "5", "-X", "POST", "http://127.0.0.1:\(controlPort)/\(path)"]
        curl.standardOutput = FileHandle.nullDevice
        try curl.run()
        guard ChildProcessExit.wait(for: curl, timeout: .seconds(10)) == 0 else {
            throw TestDatabaseError("fault proxy control \(path) failed")
        }
    }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        _ = ChildProcessExit.wait(for: process, timeout: .seconds(5))
        try? FileManager.default.removeItem(at: directory)
    }
}
