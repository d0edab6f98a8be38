import Foundation

/// Graceful shutdown: what is in flight finishes or is given back.
extension Relay {
    /// Lets requests in flight finish for the grace period, then aborts and releases the rest.
    func drain(_ engine: HTTPDeliveryEngine) async {
        let deadline = ContinuousClock.now + configuration.shutdownGracePeriod
        while engine.inFlight > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
            await drainWake.wait(upTo: .milliseconds(100))
        }
        let aborted = await withCheckedContinuation { continuation in
            // shutdown() blocks until the engine thread exits: not on the cooperative pool.
            Thread { continuation.resume(returning: engine.shutdown()) }.start()
        }
        let unfinished = state.withLock { state -> [Int64] in
            let judged = Set(state.verdicts.map { $0.deliveryID })
            let open = state.claimed.keys.filter { !judged.contains($0) }
            for id in open { state.claimed[id] = nil }
            return open
        }
        guard !unfinished.isEmpty else { return }
        do {
            let released = try await store.release(unfinished)
            logger.info("released unfinished deliveries at shutdown", metadata: [
                "released": "\(released)", "aborted_requests": "\(aborted.count)",
            ])
        } catch {
            logger.error("could not release deliveries at shutdown; their leases will expire",
                         metadata: ["count": "\(unfinished.count)", "error": "\(error)"])
        }
    }
}
