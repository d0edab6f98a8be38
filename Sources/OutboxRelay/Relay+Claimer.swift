import Foundation

/// The claimer: claims due deliveries in batches, builds their signed requests and hands
/// them to the HTTP engine; the engine thread judges each response at once.
extension Relay {
    /// Claims while there is work. With nothing due and nothing in flight it asks
    /// to sleep (holding the wake-up lock, so publishers notify it), claims once
    /// more for what committed before, and waits for a NOTIFY or the poll
    /// interval; the claim that finds work gives the lock back. When it may not
    /// sleep (a publisher is mid-commit, another relay sleeps, or due work is
    /// being claimed by another replica or waits for room) it looks again soon,
    /// backing off.
    func claimLoop(_ engine: HTTPDeliveryEngine) async {
        var health = DatabaseHealth(logger: logger, activity: "claiming")
        var asleep = false
        var recheckDelay = Self.firstRecheckDelay
        while !Task.isCancelled {
            let (stop, held) = state.withLock { ($0.stopClaiming, $0.claimed.count) }
            if stop { return }
            let room = configuration.maxOutstanding - held
            guard room > 0 else {
                await claimWake.wait(upTo: configuration.pollInterval)
                continue
            }
            do {
                var claimed = try await claim(room)
                // With requests in flight the recorder wakes the claimer when they end;
                // only an idle relay announces its sleep to the publishers.
                if claimed.isEmpty && !asleep && held == 0 {
                    asleep = try await store.prepareToSleep()
                    if asleep { claimed = try await claim(room) }
                }
                health.succeeded()
                if !claimed.isEmpty {
                    if asleep { try await store.stopSleeping() }
                    asleep = false
                    recheckDelay = Self.firstRecheckDelay
                    send(claimed, through: engine)
                    continue
                }
                await claimWake.wait(upTo: asleep ? configuration.pollInterval : recheckDelay)
                if !asleep { recheckDelay = min(recheckDelay * 2, Self.longestRecheckDelay) }
            } catch {
                health.failed(error)
                if asleep { try? await store.stopSleeping() }
                asleep = false
                await claimWake.wait(upTo: health.backoff)
            }
        }
    }

    /// Names the succeeded requests whose outcomes may not be recorded yet: their slots
    /// of max in flight are free (sql/0014_answered_slots.sql). A failure keeps its slot
    /// until recorded, so a failing endpoint is sent no more than the breaker has seen.
    func claim(_ room: Int) async throws -> [ClaimedDelivery] {
        let answered = state.withLock { state in
            state.verdicts.lazy.filter { $0.outcome == .succeeded }.map { $0.deliveryID } + state.recording
        }
        return try await store.claim(
            batchSize: min(configuration.claimBatchSize, room), defaultMaxInFlight: configuration.maxInFlight,
            answered: answered)
    }

    static let firstRecheckDelay = Duration.milliseconds(2)
    static let longestRecheckDelay = Duration.milliseconds(100)

    func send(_ claimed: [ClaimedDelivery], through engine: HTTPDeliveryEngine) {
        guard !claimed.isEmpty else { return }
        let now = Date()
        var requests: [WebhookRequest] = []
        requests.reserveCapacity(claimed.count)
        var unsendable: [WebhookResponse] = []
        let held = state.withLock { state in
            for delivery in claimed { state.claimed[delivery.deliveryID] = delivery }
            return state.claimed.count
        }
        RelayMetrics.setInFlight(held)
        for (delivery, built) in zip(claimed, builder.requests(for: claimed, now: now)) {
            switch built {
            case .success(let request):
                requests.append(request)
            case .failure(let error):
                unsendable.append(WebhookResponse(
                    tag: delivery.deliveryID, startedAt: now, duration: .zero, statusCode: nil,
                    error: "cannot build the request: \(error)", retryAfter: nil, bodyExcerpt: []))
            }
        }
        if !unsendable.isEmpty { judge(unsendable) }
        engine.submit(requests)
    }

    // MARK: - Judging (on the engine thread)

    func judge(_ responses: [WebhookResponse]) {
        let now = Date()
        state.withLock { state in
            for response in responses {
                guard let delivery = state.claimed[response.tag] else { continue }
                let schedule = delivery.retrySchedule.map {
                    RetrySchedule(intervals: $0, jitter: configuration.retrySchedule.jitter)
                } ?? configuration.retrySchedule
                state.verdicts.append(AttemptVerdict(
                    delivery: delivery, response: response, schedule: schedule, now: now, random: &state.random))
            }
        }
        recordWake.signal()
        claimWake.signal()
        drainWake.signal()
    }
}
