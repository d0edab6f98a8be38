import OutboxSQL

/// The listener: `NOTIFY outbox_work` becomes a wake-up of the claimer.
extension Relay {
    func listen() async {
        let listener: NotificationListener
        do {
            listener = try NotificationListener(target: configuration.database, channels: [Self.channel])
        } catch {
            logger.error("cannot listen for notifications; relying on polling", metadata: ["error": "\(error)"])
            return
        }
        listener.start()
        await withTaskCancellationHandler {
            var lost = false
            for await event in listener.events {
                switch event {
                case .connected:
                    if lost { logger.notice("notification listener reconnected") }
                    lost = false
                    listening.withLock { $0 = true }
                    claimWake.signal()
                case .notification:
                    claimWake.signal()
                case .disconnected(let reason):
                    listening.withLock { $0 = false }
                    if !lost { logger.warning("notification listener lost its connection; polling meanwhile", metadata: ["error": "\(reason)"]) }
                    lost = true
                }
            }
        } onCancel: {
            listener.stop()
        }
    }

    /// The channel the fan-out trigger notifies (sql/0003_functions.sql).
    static let channel = "outbox_work"
}
