import Logging

/// The relay's log lines for state changes that matter (SPEC §7): dead letters,
/// 410 disables, circuits opening and closing, subscriptions disabled. Never a
/// line per successful delivery.
extension Logger {
    /// Logs what one recorded batch changed.
    func logStateChanges(of batch: [AttemptVerdict], endpoints changes: [EndpointChange]) {
        logDeadLetters(batch)
        logEndpointChanges(changes, names: batch)
    }

    private func logDeadLetters(_ batch: [AttemptVerdict]) {
        for verdict in batch where verdict.outcome == .dead {
            self.warning("delivery is dead: retries exhausted", metadata: [
                "delivery_id": "\(verdict.deliveryID)", "subscription": "\(verdict.subscriptionName)",
                "error": "\(verdict.error ?? "")",
            ])
        }
        for subscription in Set(batch.filter(\.endpointGone).map(\.subscriptionName)) {
            self.warning("subscription disabled: its endpoint answered 410 Gone", metadata: ["subscription": "\(subscription)"])
        }
    }

    private func logEndpointChanges(_ changes: [EndpointChange], names batch: [AttemptVerdict]) {
        guard !changes.isEmpty else { return }
        let names = Dictionary(batch.map { ($0.subscriptionID, $0.subscriptionName) }, uniquingKeysWith: { first, _ in first })
        for change in changes {
            let metadata: Logger.Metadata = [
                "subscription": "\(names[change.subscriptionID] ?? String(change.subscriptionID))",
                "circuit_state": "\(change.circuitState)", "previous_circuit_state": "\(change.previousCircuitState)",
            ]
            if change.disabled {
                self.warning("subscription disabled: its endpoint kept failing for the disable period", metadata: metadata)
            } else if change.circuitState == "open" {
                self.warning("circuit opened: endpoint paused after consecutive failures", metadata: metadata)
            } else if change.circuitState == "closed" {
                self.notice("circuit closed: endpoint recovered", metadata: metadata)
            }
        }
    }
}
