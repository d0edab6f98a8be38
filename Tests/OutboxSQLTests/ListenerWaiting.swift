import OutboxSQL

/// Waiting for something asynchronous, bounded by a deadline: no sleeps, no polling.
struct TimedOut: Error, CustomStringConvertible {
    let waitingFor: String
    let timeout: Duration
    var description: String { "timed out after \(timeout) waiting for \(waitingFor)" }
}

/// Returns `body`'s result, or throws `TimedOut` when it takes longer than `timeout`.
func withDeadline<T: Sendable>(
    _ timeout: Duration, waitingFor what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let value = try await group.next() ?? nil else {
            throw TimedOut(waitingFor: what, timeout: timeout)
        }
        return value
    }
}

/// A listener's stream ended before the event a test waited for.
struct ListenerFinished: Error, CustomStringConvertible {
    var description: String { "the listener's event stream finished early" }
}

extension NotificationListener {
    /// The next event that `matches`, skipping others, within `timeout`.
    func next(
        within timeout: Duration, _ what: String, where matches: @escaping @Sendable (ListenerEvent) -> Bool
    ) async throws -> ListenerEvent {
        try await withDeadline(timeout, waitingFor: what) {
            for await event in self.events where matches(event) {
                return event
            }
            throw ListenerFinished()
        }
    }

    /// Waits until the listener reports `.connected`.
    func connected(within timeout: Duration = .seconds(10)) async throws {
        _ = try await next(within: timeout, "the listener to connect") { $0 == .connected }
    }

    /// The next notification within `timeout`.
    func notification(within timeout: Duration) async throws -> PostgresNotification {
        let event = try await next(within: timeout, "a notification") {
            if case .notification = $0 { return true }
            return false
        }
        guard case .notification(let notification) = event else { throw ListenerFinished() }
        return notification
    }
}
