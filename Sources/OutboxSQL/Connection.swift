import CLibPQ
import Foundation

/// A notification received on a `LISTEN`ed channel.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// The server process that sent it.
    public var senderPID: Int32
}

/// A statement prepared once per connection and executed by name afterwards.
public struct PreparedStatement: Sendable, Hashable {
    public let name: String
    public let sql: String
    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }
}

/// One libpq connection. Its calls block, so use it from one thread that is not
/// Swift's cooperative pool: `DatabaseClient` and `NotificationListener` own one each.
/// It notices a dropped connection and `ensureConnected()` re-establishes it.
public final class Connection {
    public let target: ConnectionTarget
    /// The longest wait for the answer to one statement; nil waits as long as it
    /// takes (migrations). A statement unanswered in time closes the connection and
    /// throws `.connectionLost`, so a server or network gone silent never hangs the
    /// caller; the next `ensureConnected()` opens a new one.
    public var statementDeadline: Duration?
    var handle: OpaquePointer?
    var preparedNames: Set<String> = []

    /// Opens a connection; throws `.connectionFailed` with a redacted reason.
    public init(_ target: ConnectionTarget) throws {
        self.target = target
        try open()
    }

    deinit { PQfinish(handle) }

    /// Defaults the caller's URL can override: fail fast instead of hanging on a
    /// dead network, name ourselves in pg_stat_activity.
    private static let defaults: [(String, String)] = [
        ("connect_timeout", "10"),
        ("keepalives_idle", "30"),
        ("keepalives_interval", "10"),
        ("keepalives_count", "3"),
        ("fallback_application_name", "outbox-relay"),
    ]

    private func open() throws {
        let keywords = Self.defaults.map(\.0) + ["dbname"]
        let values = Self.defaults.map(\.1) + [target.conninfo]
        // libpq wants both arrays NULL-terminated.
        let connection = withCStrings(keywords + [nil]) { keywordPointers in
            withCStrings(values + [nil]) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection, PQstatus(connection) == CONNECTION_OK else {
            let reason = connection.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            PQfinish(connection)
            var redacted = PostgresError.redact(reason)
            // libpq quotes some option values back (`invalid sslmode value: "…"`): never the password.
            if let password = target.password, !password.isEmpty {
                redacted = redacted.replacingOccurrences(of: password, with: "[redacted]")
            }
            throw PostgresError(code: .connectionFailed,
                                message: "cannot connect to PostgreSQL at \(target): \(redacted)")
        }
        // Server notices ("schema already exists, skipping") are not errors; libpq
        // would print them on stderr.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        // Non-blocking: sending never waits on the socket without a deadline (StatementExchange.swift).
        PQsetnonblocking(connection, 1)
        handle = connection
        preparedNames = []
        try execute("SET DateStyle = ISO; SET TimeZone = 'UTC'; SET IntervalStyle = postgres")
    }

    /// Closes the current connection and opens a new one.
    public func reconnect() throws {
        PQfinish(handle)
        handle = nil
        try open()
    }

    /// True while the server side is still there. Cheap: `poll` with no wait;
    /// an idle connection has nothing to read unless the server hung up or notified.
    public var isAlive: Bool {
        guard let handle, PQstatus(handle) == CONNECTION_OK else { return false }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        // A terminated session sends its FATAL message and then closes; libpq reads
        // one at a time, so keep reading (boundedly) until it sees the end of file.
        var reads = 0
        while reads < 8, poll(&descriptor, 1, 0) > 0 {
            if PQconsumeInput(handle) == 0 { return false }
            reads += 1
        }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Reconnects when the connection was lost while idle, so the next statement
    /// runs on a live session.
    public func ensureConnected() throws {
        if !isAlive { try reconnect() }
    }

    /// Runs one statement with bind parameters and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) throws -> QueryResult {
        try exchange { handle in
            withCStrings(parameters.map { $0.postgresText }) { values in
                PQsendQueryParams(handle, sql, Int32(parameters.count), nil, values, nil, nil, 0)
            }
        }
    }

    /// Runs a prepared statement, preparing it first on this connection if needed.
    @discardableResult
    public func query(_ statement: PreparedStatement, _ parameters: [any PostgresEncodable] = []) throws -> QueryResult {
        if !preparedNames.contains(statement.name) {
            _ = try exchange { handle in PQsendPrepare(handle, statement.name, statement.sql, 0, nil) }
            preparedNames.insert(statement.name)
        }
        return try exchange { handle in
            withCStrings(parameters.map { $0.postgresText }) { values in
                PQsendQueryPrepared(handle, statement.name, Int32(parameters.count), values, nil, nil, 0)
            }
        }
    }

    /// Runs SQL text that may hold several statements and no parameters
    /// (migration files, `SET`, `LISTEN`).
    public func execute(_ sql: String) throws {
        _ = try exchange { handle in PQsendQuery(handle, sql) }
    }

    /// Runs `body` in a transaction: commits when it returns, rolls back when it throws.
    public func withTransaction<T>(_ body: (Connection) throws -> T) throws -> T {
        try execute("BEGIN")
        let value: T
        do {
            value = try body(self)
        } catch {
            if isAlive { try? execute("ROLLBACK") }
            throw error
        }
        try execute("COMMIT")
        return value
    }

    /// Notifications already received, without waiting.
    public func takeNotifications() throws -> [PostgresNotification] {
        let handle = try liveHandle()
        guard PQconsumeInput(handle) != 0 else {
            throw PostgresError(code: .connectionLost, message: PostgresError.redact(String(cString: PQerrorMessage(handle))))
        }
        var received: [PostgresNotification] = []
        while let notify = PQnotifies(handle) {
            received.append(PostgresNotification(
                channel: String(cString: notify.pointee.relname),
                payload: String(cString: notify.pointee.extra),
                senderPID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        return received
    }

    /// The socket to wait on for notifications; -1 when closed.
    public var socket: Int32 { handle.map { PQsocket($0) } ?? -1 }

    /// The server's process id for this session (for `pg_terminate_backend`).
    public var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    func liveHandle() throws -> OpaquePointer {
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            throw PostgresError(code: .connectionLost, message: "the connection to PostgreSQL is closed")
        }
        return handle
    }

    func check(_ result: OpaquePointer?) throws -> QueryResult {
        let status = result.map { PQresultStatus($0) } ?? PGRES_FATAL_ERROR
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return QueryResult(result!)
        default:
            let lost = handle.map { PQstatus($0) != CONNECTION_OK } ?? true
            let error = PostgresError(result: result, connection: handle, lost: lost)
            PQclear(result)
            if lost { preparedNames = [] }
            throw error
        }
    }
}

/// Calls `body` with a C array of C strings (NULL entries for nil) that lives for the call.
func withCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.flatMap { strdup($0) } }
    defer { copies.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
