import CLibPQ
import Foundation
import Synchronization

/// What a `NotificationListener` reports.
public enum ListenerEvent: Sendable, Equatable {
    /// Listening (first time, or again after a reconnect). Notifications sent
    /// while it was not connected are lost: treat this as a reason to look.
    case connected
    /// A notification arrived.
    case notification(PostgresNotification)
    /// The connection failed or broke; it is being re-established with backoff.
    case disconnected(reason: String)
}

/// `LISTEN`s on channels from its own connection and thread, waiting on the
/// connection's socket (no sleep loop), and reconnects by itself. Iterate
/// `events`; call `stop()` (or use `withListener`) to end it.
public final class NotificationListener: Sendable {
    /// Events in order; finishes after `stop()`.
    public let events: AsyncStream<ListenerEvent>
    private let continuation: AsyncStream<ListenerEvent>.Continuation
    private let target: ConnectionTarget
    private let channels: [String]
    private let state = Mutex(State())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private struct State {
        var connected = false
        var stopped = false
        var started = false
    }

    /// `channels` must be plain identifiers (they are quoted, not bound).
    public init(target: ConnectionTarget, channels: [String]) throws {
        self.target = target
        self.channels = channels
        (events, continuation) = AsyncStream.makeStream(of: ListenerEvent.self, bufferingPolicy: .bufferingNewest(1024))
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw PostgresError(code: .connectionFailed, message: "cannot create a wake-up pipe: \(String(cString: strerror(errno)))")
        }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Runs `body` with a started listener and stops it when `body` returns.
    public static func withListener<T>(
        target: ConnectionTarget, channels: [String],
        _ body: (NotificationListener) async throws -> T
    ) async throws -> T {
        let listener = try NotificationListener(target: target, channels: channels)
        listener.start()
        defer { listener.stop() }
        return try await body(listener)
    }

    /// True while the listening connection is up.
    public var isConnected: Bool { state.withLock { $0.connected } }

    /// Starts the listening thread.
    public func start() {
        let first = state.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        guard first else { return }
        let thread = Thread { [self] in self.listen() }
        thread.name = "outbox-listener"
        thread.start()
    }

    /// Stops listening and finishes `events`.
    public func stop() {
        state.withLock { $0.stopped = true }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func listen() {
        var backoff = Duration.milliseconds(100)
        while !isStopped {
            do {
                let connection = try Connection(target)
                connection.statementDeadline = Self.pingDeadline
                for channel in channels {
                    try connection.execute("LISTEN \"\(channel.replacingOccurrences(of: "\"", with: "\"\""))\"")
                }
                state.withLock { $0.connected = true }
                continuation.yield(.connected)
                backoff = .milliseconds(100)
                try wait(on: connection)
            } catch {
                state.withLock { $0.connected = false }
                if isStopped { break }
                continuation.yield(.disconnected(reason: "\(error)"))
                if waitForWake(timeout: backoff) { break }
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        state.withLock { $0.connected = false }
        continuation.finish()
    }

    /// Delivers notifications until the connection breaks (throws) or `stop()`.
    private func wait(on connection: Connection) throws {
        while true {
            var descriptors = [
                pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, Self.quietMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            if descriptors[1].revents != 0 || isStopped { return }
            if ready == 0 {
                // Quiet for a while: make sure the server is still there. A silent
                // network would otherwise keep this connection "up" forever.
                try connection.query("SELECT 1")
                continue
            }
            if descriptors[0].revents != 0 {
                for notification in try connection.takeNotifications() {
                    continuation.yield(.notification(notification))
                }
            }
        }
    }

    /// After this long without traffic the listener pings the server...
    private static let quietMilliseconds: Int32 = 30_000
    /// ... and gives up on the connection if the ping is not answered in this time.
    private static let pingDeadline = Duration.seconds(10)

    /// Sleeps on the wake-up pipe; true when woken by `stop()`.
    private func waitForWake(timeout: Duration) -> Bool {
        var descriptor = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return poll(&descriptor, 1, milliseconds) > 0 || isStopped
    }
}
