import OutboxSQL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Connection {
    /// Blocks in `poll(2)` on the socket until notifications arrive (returns them)
    /// or `timeout` passes (returns none).
    public func waitForNotifications(upTo timeout: Duration) throws -> [PostgresNotification] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let received = try takeNotifications()
            if !received.isEmpty { return received }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return [] }
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000) + 1
            _ = poll(&descriptor, 1, milliseconds)
        }
    }
}
