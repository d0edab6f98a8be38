
/// The recorder: writes judged attempts in batches (`outbox.record_results`).
extension Relay {
    func recordLoop() async {
        var health = DatabaseHealth(logger: logger, activity: "recording attempts")
        var giveUpAt: ContinuousClock.Instant?
        while true {
            let (batch, stopping) = state.withLock { state in
                let batch = Array(state.verdicts.prefix(Self.recordBatchLimit))
                state.verdicts.removeFirst(batch.count)
                state.recording = batch.filter { $0.outcome == .succeeded }.map { $0.deliveryID }
                return (batch, state.stopRecording)
            }
            if batch.isEmpty {
                if stopping { return }
                await recordWake.wait(upTo: .seconds(1))
                continue
            }
            do {
                let changes = try await store.record(batch, breaker: configuration.breaker)
                health.succeeded()
                logger.logStateChanges(of: batch, endpoints: changes)
                RelayMetrics.recordOutcomes(batch)
                let held = state.withLock { state in
                    for verdict in batch { state.claimed[verdict.deliveryID] = nil }
                    state.recording = []
                    return state.claimed.count
                }
                RelayMetrics.setInFlight(held)
                // A record frees no slot a claim could not use already; it matters to the
                // claimer only when this process held its most or now holds nothing (sleep).
                if held == 0 || held + batch.count >= configuration.maxOutstanding { claimWake.signal() }
            } catch {
                health.failed(error)
                state.withLock { state in
                    state.verdicts.insert(contentsOf: batch, at: 0)
                    state.recording = []
                }
                if stopping {
                    // Leases expire and the work is retried elsewhere: a duplicate, never a loss.
                    let deadline = giveUpAt ?? .now + configuration.shutdownGracePeriod
                    giveUpAt = deadline
                    if .now >= deadline {
                        logger.error("could not record attempts before exit; their leases will expire and they will be retried",
                                     metadata: ["count": "\(state.withLock { $0.verdicts.count })"])
                        return
                    }
                }
                try? await Task.sleep(for: health.backoff)
            }
        }
    }

    static let recordBatchLimit = 2_000
}
