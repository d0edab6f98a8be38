import Foundation
import OutboxSQL
import Synchronization
import TestSupport

/// A running `outbox-relay run`, as a child process of the test.
///
/// Its standard output and error go to a temporary file (``log``), so a failing test
/// can show what the relay said. ``terminate(within:)`` sends SIGTERM and waits,
/// ``kill()`` sends SIGKILL; the process is always killed when the value goes away.
final class RelayProcess: Sendable {
    /// The process id, for messages.
    let pid: Int32
    private let logURL: URL
    /// Guards the `Process`, which is not Sendable; every access goes through the lock.
    private let process: Mutex<Process>
    /// How it ended, once reaped (a child can be reaped only once).
    private let finished = Mutex<RelayExit?>(nil)

    /// Settings every test relay gets unless `environment` overrides them.
    static let defaults: [String: String] = [
        "OUTBOX_ALLOW_PRIVATE_NETWORKS": "true",
        // Any free port: several relays run at once on one machine.
        "OUTBOX_ADMIN_LISTEN": "127.0.0.1:0",
        "OUTBOX_LOG_FORMAT": "text",
        "OUTBOX_LOG_LEVEL": "info",
        "OUTBOX_POLL_INTERVAL": "200ms",
        "OUTBOX_LEASE": "3s",
        "OUTBOX_TIMEOUT": "2s",
        "OUTBOX_RETRY_SCHEDULE": "1s,1s,1s",
        "OUTBOX_SHUTDOWN_GRACE": "5s",
    ]

    /// Starts `outbox-relay run` against `database` with ``defaults`` and `environment` on top.
    init(database: TestDatabase, environment: [String: String] = [:]) throws {
        let logURL = FileManager.default.temporaryDirectory
            .appendingPathComponent("outbox-relay-\(UUID().uuidString).log")
        try Data().write(to: logURL)
        let process = Process()
        process.executableURL = try RelayBinary.url()
        process.arguments = ["run"]
        process.environment = ProcessInfo.processInfo.environment
            .merging(Self.defaults) { $1 }
            .merging(["OUTBOX_DATABASE_URL": database.conninfo]) { $1 }
            .merging(environment) { $1 }
        process.standardInput = FileHandle.nullDevice
        let output = try FileHandle(forWritingTo: logURL)
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            try? FileManager.default.removeItem(at: logURL)
            throw RelayProcessError("could not start \(process.executableURL?.path ?? "outbox-relay"): \(error)")
        }
        try? output.close()
        self.pid = process.processIdentifier
        self.logURL = logURL
        self.process = Mutex(process)
    }

    deinit {
        process.withLock { process in
            if finished.withLock({ $0 == nil }) && !ChildProcessExit.hasExited(process) {
                Foundation.kill(process.processIdentifier, SIGKILL)
                _ = ChildProcessExit.wait(for: process, timeout: .seconds(10))
            }
        }
        try? FileManager.default.removeItem(at: logURL)
    }

    var isRunning: Bool { exitIfFinished() == nil }

    /// Everything the relay printed so far.
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// The last `lines` lines of ``log``, for failure messages.
    func logTail(_ lines: Int = 30) -> String {
        log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// SIGKILL, then waits for the process to be gone.
    func kill() async {
        process.withLock { _ = Foundation.kill($0.processIdentifier, SIGKILL) }
        _ = try? await waitForExit(within: .seconds(10))
    }

    /// SIGTERM, then waits at most `deadline` for the exit. Throws (after a SIGKILL)
    /// when the relay is still running then.
    func terminate(within deadline: Duration) async throws -> RelayExit {
        process.withLock { _ = Foundation.kill($0.processIdentifier, SIGTERM) }
        do {
            return try await waitForExit(within: deadline)
        } catch {
            await kill()
            throw error
        }
    }

    /// Polls every 20 ms until the process has exited; throws after `deadline`.
    func waitForExit(within deadline: Duration) async throws -> RelayExit {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: deadline)
        while clock.now < end {
            if let exit = exitIfFinished() { return exit }
            try await Task.sleep(for: .milliseconds(20))
        }
        if let exit = exitIfFinished() { return exit }
        throw RelayProcessError("relay \(pid) still running \(deadline) after the signal; its log ends:\n\(logTail())")
    }

    /// The port of the admin API, from its `admin API listening` log line; waits up
    /// to 10 s for it.
    func apiPort() async throws -> Int {
        for _ in 0..<200 {
            for line in log.split(separator: "\n") where line.contains("admin API listening") {
                if let match = line.firstMatch(of: /127\.0\.0\.1:(\d{1,5})\b/), let port = Int(match.1) { return port }
            }
            try requireRunning()
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RelayProcessError("no `admin API listening` line:\n\(logTail())")
    }

    /// Throws, with the end of the log, when the relay is no longer running.
    func requireRunning() throws {
        if let exit = exitIfFinished() {
            throw RelayProcessError("relay \(pid) exited (\(exit)); its log ends:\n\(logTail())")
        }
    }

    private func exitIfFinished() -> RelayExit? {
        process.withLock { process in
            finished.withLock { finished in
                if finished == nil, let outcome = ChildProcessExit.outcome(of: process) {
                    finished = RelayExit(signaled: outcome.signaled, code: outcome.code)
                }
                return finished
            }
        }
    }
}

/// How a relay process ended.
struct RelayExit: Equatable, CustomStringConvertible {
    /// True when a signal ended it; `code` is then the signal number.
    let signaled: Bool
    let code: Int32

    static let success = RelayExit(signaled: false, code: 0)

    var description: String { signaled ? "killed by signal \(code)" : "exit status \(code)" }
}

/// A relay process did not start, stop or behave as a test needed.
struct RelayProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Counting what arrived

/// What one receiver path got, measured against the events a test expects there.
struct DeliveryTally: CustomStringConvertible {
    /// Expected event ids never answered with a 2xx at the path.
    let missing: Set<String>
    /// Event ids that arrived more than once, with how many times.
    let repeated: [String: Int]
    /// Requests beyond the first per event id.
    var duplicates: Int { repeated.values.reduce(0) { $0 + $1 - 1 } }

    init(expected: Set<String>, requests: [ReceivedRequest], path: String) {
        let here = requests.filter { $0.path == path }
        let delivered = Set(here.filter { (200..<300).contains($0.status) }.compactMap(\.webhookID))
        missing = expected.subtracting(delivered)
        repeated = Dictionary(grouping: here.compactMap(\.webhookID), by: { $0 })
            .compactMapValues { $0.count > 1 ? $0.count : nil }
    }

    var description: String {
        "\(missing.count) missing (e.g. \(missing.sorted().prefix(3))), \(duplicates) duplicates (e.g. \(repeated.keys.sorted().prefix(3)))"
    }
}

/// Polls the receiver every 100 ms until every expected event reached `path` with a 2xx.
/// Throws after `timeout`, or as soon as one of `relays` has exited, saying what is missing.
func waitForDeliveries(
    of expected: Set<String>, at path: String, on receiver: TestReceiver,
    relays: [RelayProcess], timeout: Duration
) async throws -> DeliveryTally {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        let tally = DeliveryTally(expected: expected, requests: try receiver.requests(), path: path)
        if tally.missing.isEmpty { return tally }
        for relay in relays { try relay.requireRunning() }
        if clock.now >= deadline {
            let logs = relays.map { "relay \($0.pid):\n\($0.logTail(15))" }.joined(separator: "\n")
            throw RelayProcessError("timed out after \(timeout): \(tally)\n\(logs)")
        }
        try await Task.sleep(for: .milliseconds(100))
    }
}

/// Polls the receiver every 20 ms until `count` requests reached `path` (any path when
/// nil); throws after `timeout`, or as soon as one of `relays` has exited. Without a path
/// it counts log lines undecoded, so the wait ends promptly even with thousands logged.
func waitForArrivals(
    count: Int, at path: String? = nil, on receiver: TestReceiver, relays: [RelayProcess], timeout: Duration
) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while true {
        let arrived = try path.map { path in try receiver.requests().filter { $0.path == path }.count }
            ?? Data(contentsOf: receiver.logURL).reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
        if arrived >= count { return }
        for relay in relays { try relay.requireRunning() }
        if ContinuousClock.now >= deadline {
            let logs = relays.map { "relay \($0.pid):\n\($0.logTail(15))" }.joined(separator: "\n")
            throw RelayProcessError("timed out after \(timeout): \(arrived) of \(count) requests reached \(path ?? "the receiver")\n\(logs)")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

// MARK: - Database steps shared by the process tests

/// Small SQL steps the process tests share; kept in a namespace so their names
/// cannot collide with other suites' helpers in this module.
enum ProcessTestSQL {
    /// Subscribes `url` to `order.*` events.
    static func subscribe(_ sql: Connection, name: String, url: String) throws {
        try sql.query("SELECT outbox.subscribe($1, $2, ARRAY['order.*'])", [name, url])
    }

    /// Publishes `count` `order.created` events in one transaction; returns their event ids.
    @discardableResult
    static func publish(_ sql: Connection, count: Int) throws -> Set<String> {
        let result = try sql.query("""
            INSERT INTO outbox.events (event_type, payload)
            SELECT 'order.created', jsonb_build_object('n', n)
            FROM generate_series(1, $1::integer) AS n
            RETURNING event_id
            """, [count])
        return Set(try result.rows.map { try $0.decode(String.self, at: 0) })
    }

    /// Event ids of the deliveries in `status`.
    static func eventIDs(_ sql: Connection, status: String) throws -> Set<String> {
        Set(try sql.query("SELECT event_id FROM outbox.deliveries WHERE status = $1", [status])
            .rows.map { try $0.decode(String.self, at: 0) })
    }

    /// Number of deliveries matching `condition` (a fixed SQL predicate, never test data).
    static func deliveries(_ sql: Connection, where condition: String) throws -> Int {
        try sql.query("SELECT count(*) FROM outbox.deliveries WHERE \(condition)")[0].decode(Int.self, at: 0)
    }

    /// Polls every 100 ms until `condition` holds for `expected` deliveries (the relay
    /// records a little after the receiver answered); returns the last count seen.
    @discardableResult
    static func waitForDeliveries(
        _ sql: Connection, where condition: String, count expected: Int, timeout: Duration
    ) async throws -> Int {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let seen = try deliveries(sql, where: condition)
            if seen == expected || ContinuousClock.now >= deadline { return seen }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Backend pids of the sessions on `sql`'s database whose last statement was a LISTEN:
    /// one per running relay.
    static func listenerBackends(_ sql: Connection) throws -> Set<Int32> {
        Set(try sql.query("""
            SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND query ILIKE 'LISTEN%'
            """).rows.map { try $0.decode(Int32.self, at: 0) })
    }

    /// Polls every 50 ms until the LISTEN sessions satisfy `condition`; returns them.
    @discardableResult
    static func waitForListeners(
        _ sql: Connection, timeout: Duration, until condition: (Set<Int32>) -> Bool
    ) async throws -> Set<Int32> {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let backends = try listenerBackends(sql)
            if condition(backends) { return backends }
            if ContinuousClock.now >= deadline {
                throw RelayProcessError("after \(timeout) the LISTEN sessions are still \(backends.sorted())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Polls every 50 ms until no session but `sql`'s own is connected to its database,
    /// so a killed relay's last statements have finished or rolled back.
    static func waitForOtherSessionsToEnd(_ sql: Connection, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let others = try sql.query("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                """)[0].decode(Int.self, at: 0)
            if others == 0 { return }
            if ContinuousClock.now >= deadline {
                throw RelayProcessError("\(others) database sessions still open \(timeout) after the relay died")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
