import Logging
import OutboxRelay
import OutboxSQL
import ServiceLifecycle
import Synchronization

/// What `/readyz` answers: the database reachable, the listener connected, the
/// schema current. Checked every `interval` in the background, so a probe never
/// waits on a slow database; `/readyz` reads the last result.
public final class ReadinessMonitor: Service, Sendable {
    /// The last check: nil when ready, else why not.
    public var notReadyReason: String? { state.withLock { $0 } }

    private let database: DatabaseClient
    private let interval: Duration
    private let isListening: @Sendable () -> Bool
    private let state = Mutex<String?>("not checked yet")

    /// `isListening` tells whether the relay's LISTEN connection is up.
    public init(target: ConnectionTarget, interval: Duration = .seconds(2), isListening: @escaping @Sendable () -> Bool) {
        database = DatabaseClient(target: target, name: "readiness", statementDeadline: .seconds(5))
        self.interval = interval
        self.isListening = isListening
    }

    public func run() async throws {
        defer { database.close() }
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let reason = await self.check()
                self.state.withLock { $0 = reason }
                try await Task.sleep(for: self.interval)
            }
        }
    }

    private func check() async -> String? {
        do {
            let status = try await database.run { connection in try OutboxSchema.migrator.status(on: connection) }
            if case .pending(let versions) = status {
                return "schema is not current: migrations \(versions) are pending (run outbox-relay migrate)"
            }
        } catch {
            return "database unreachable: \(error)"
        }
        return isListening() ? nil : "notification listener is not connected"
    }
}
