import Foundation

/// One connection driven by a dedicated thread, so libpq's blocking calls never
/// run on Swift's cooperative pool. `run` hands a closure to that thread and
/// awaits its result. The connection is opened on first use and re-opened when it
/// was lost; a statement that fails because the connection broke throws
/// `.connectionLost` and the next `run` reconnects.
public final class DatabaseClient: @unchecked Sendable {
    // Safe to share: `jobs`, `stopped` and `thread` are only touched while holding
    // `condition`; `connection` only on the worker thread.
    private let target: ConnectionTarget
    private let name: String
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopped = false
    private var thread: Thread?
    private var connection: Connection?

    /// `name` labels the thread (visible in debuggers and `top -H`).
    private let statementDeadline: Duration?

    /// `statementDeadline` bounds each statement (see `Connection.statementDeadline`).
    public init(target: ConnectionTarget, name: String, statementDeadline: Duration? = .seconds(30)) {
        self.statementDeadline = statementDeadline
        self.target = target
        self.name = name
    }

    /// Runs `body` with the live connection on the client's thread.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = enqueue {
                continuation.resume(with: Result { try body(self.liveConnection()) })
            }
            if !accepted {
                continuation.resume(throwing: PostgresError(code: .connectionLost, message: "database client \(self.name) is closed"))
            }
        }
    }

    /// Runs `body` in a transaction on the client's thread.
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await run { connection in try connection.withTransaction(body) }
    }

    /// Stops the thread after the jobs already queued and closes the connection.
    public func close() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func liveConnection() throws -> Connection {
        if let connection {
            try connection.ensureConnected()
            return connection
        }
        let opened = try Connection(target)
        opened.statementDeadline = statementDeadline
        connection = opened
        return opened
    }

    private func enqueue(_ job: @escaping () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { return false }
        jobs.append(job)
        if thread == nil {
            let worker = Thread { [self] in self.work() }
            worker.name = "outbox-db-\(name)"
            thread = worker
            worker.start()
        }
        condition.signal()
        return true
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                connection = nil
                return
            }
            let batch = jobs
            jobs.removeAll()
            condition.unlock()
            for job in batch { job() }
        }
    }
}
