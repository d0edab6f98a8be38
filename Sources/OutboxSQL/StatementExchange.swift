import CLibPQ
import Foundation

/// One statement's round trip with libpq's asynchronous calls: send, flush,
/// then wait on the socket for the answer, never longer than the connection's
/// `statementDeadline`. libpq's synchronous calls (`PQexec…`) would wait forever
/// on a server or network that went silent.
extension Connection {
    /// Sends with `send` (a `PQsend…` call) and returns the statement's result:
    /// the first error if any part failed, else the last result.
    func exchange(_ send: (OpaquePointer) -> Int32) throws -> QueryResult {
        let handle = try liveHandle()
        let deadline = statementDeadline.map { ContinuousClock.now + $0 }
        guard send(handle) == 1 else { return try check(nil) }
        try flush(handle, until: deadline)
        var kept: OpaquePointer?
        while true {
            while PQisBusy(handle) != 0 {
                do {
                    try waitForSocket(handle, events: Int16(POLLIN), until: deadline)
                } catch {
                    PQclear(kept)
                    throw error
                }
                if PQconsumeInput(handle) == 0 {
                    PQclear(kept)
                    return try check(nil)
                }
            }
            guard let next = PQgetResult(handle) else { break }
            if kept == nil || (Self.isFailure(next) && !Self.isFailure(kept)) {
                PQclear(kept)
                kept = next
            } else if Self.isFailure(kept) {
                PQclear(next)
            } else {
                PQclear(kept)
                kept = next
            }
        }
        return try check(kept)
    }

    /// Sends what libpq buffered (a large statement may not fit the socket at once).
    private func flush(_ handle: OpaquePointer, until deadline: ContinuousClock.Instant?) throws {
        while true {
            switch PQflush(handle) {
            case 0:
                return
            case 1:
                try waitForSocket(handle, events: Int16(POLLIN | POLLOUT), until: deadline)
                // Reading while waiting to write lets the server make progress too.
                if PQconsumeInput(handle) == 0 { _ = try check(nil) }
            default:
                _ = try check(nil)
            }
        }
    }

    /// Waits until the socket is ready or the deadline passes; then the connection
    /// is closed (its state is unknown) and `.connectionLost` thrown.
    private func waitForSocket(_ handle: OpaquePointer, events: Int16, until deadline: ContinuousClock.Instant?) throws {
        while true {
            var descriptor = pollfd(fd: PQsocket(handle), events: events, revents: 0)
            var timeout: Int32 = -1
            if let deadline {
                let left = deadline - ContinuousClock.now
                timeout = Int32(clamping: max(0, left.components.seconds * 1_000 + left.components.attoseconds / 1_000_000_000_000_000))
            }
            let ready = poll(&descriptor, 1, timeout)
            if ready > 0 { return }
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 || ready < 0 {
                abandon()
                let waited = statementDeadline.map { " within \($0)" } ?? ""
                throw PostgresError(
                    code: .connectionLost,
                    message: "PostgreSQL did not answer\(waited); the connection was closed and will be opened again")
            }
        }
    }

    /// Drops a connection whose state is unknown.
    private func abandon() {
        PQfinish(handle)
        handle = nil
        preparedNames = []
    }

    private static func isFailure(_ result: OpaquePointer?) -> Bool {
        switch result.map({ PQresultStatus($0) }) ?? PGRES_FATAL_ERROR {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: false
        default: true
        }
    }
}
