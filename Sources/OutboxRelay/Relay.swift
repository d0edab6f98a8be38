import Foundation
import Logging
import OutboxSQL
import ServiceLifecycle
import Synchronization

/// `outbox-relay run`: the whole delivery pipeline as one `Service`.
///
/// Four loops share the work (docs/ARCHITECTURE.md draws them):
/// - the **listener** turns `NOTIFY outbox_work` into a wake-up of the claimer;
/// - the **claimer** claims due deliveries in batches, builds the signed requests
///   and hands them to the HTTP engine; the slots of max in flight of succeeded
///   requests are free for it before their outcomes are recorded; without a
///   wake-up it polls;
/// - the **HTTP engine** (its own thread, libcurl multi) sends them and reports
///   responses, which are judged at once (`AttemptVerdict`) and queued;
/// - the **recorder** writes queued verdicts in batches (`outbox.record_results`);
/// - **upkeep** renews this process's leases and rescues expired ones.
///
/// On graceful shutdown (SIGTERM) it stops claiming, lets requests in flight
/// finish for the grace period, releases what is still unfinished (not charged),
/// records every verdict, and returns.
public final class Relay: Service, Sendable {
    private let configuration: RelayConfiguration
    private let logger: Logger
    private let store: DeliveryStore
    private let builder: WebhookRequestBuilder
    private let claimWake = WakeSignal()
    private let recordWake = WakeSignal()
    private let drainWake = WakeSignal()
    private let state = Mutex(PipelineState())
    private let listening = Mutex(false)

    /// What the loops and the engine thread share.
    private struct PipelineState {
        /// Claimed and not yet recorded, by delivery id.
        var claimed: [Int64: ClaimedDelivery] = [:]
        /// Judged attempts waiting for the recorder.
        var verdicts: [AttemptVerdict] = []
        /// Succeeded deliveries of the batch the recorder is writing.
        var recording: [Int64] = []
        var stopClaiming = false
        var stopRecording = false
        var random = SystemRandomNumberGenerator()
    }

    public init(configuration: RelayConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let owner = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8))"
        store = DeliveryStore(target: configuration.database, owner: owner, lease: configuration.lease)
        builder = WebhookRequestBuilder(defaultTimeout: configuration.timeout)
    }

    /// Deliveries this process holds (claimed, not yet recorded).
    public var outstanding: Int { state.withLock { $0.claimed.count } }

    /// True while the LISTEN connection is up (for `/readyz`).
    public var isListening: Bool { listening.withLock { $0 } }

    public func run() async throws {
        let engine = try HTTPDeliveryEngine(
            configuration: .init(
                userAgent: configuration.userAgent,
                responseExcerptBytes: configuration.responseExcerptBytes,
                caBundlePath: configuration.caBundlePath,
                allowPrivateNetworks: configuration.allowPrivateNetworks),
            onResponses: { [self] responses in judge(responses) })
        try engine.start()
        logger.info("relay started", metadata: ["owner": "\(store.owner)"])
        defer { store.close() }

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { background in
                background.addTask { await self.listen() }
                background.addTask { await self.upkeep() }
                background.addTask { await self.observeBacklog() }
                await withTaskGroup(of: Void.self) { pipeline in
                    pipeline.addTask { await self.recordLoop() }
                    await self.claimLoop(engine)
                    await self.drain(engine)
                    self.state.withLock { $0.stopRecording = true }
                    self.recordWake.signal()
                    await pipeline.waitForAll()
                }
                background.cancelAll()
            }
        } onGracefulShutdown: {
            self.stopClaiming()
        }
        logger.info("relay stopped")
    }

    private func stopClaiming() {
        state.withLock { $0.stopClaiming = true }
        claimWake.signal()
    }

    // MARK: - Listener

    private func listen() async {
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

    // MARK: - Claimer

    /// Claims while there is work. With nothing due and nothing in flight it asks
    /// to sleep (holding the wake-up lock, so publishers notify it), claims once
    /// more for what committed before, and waits for a NOTIFY or the poll
    /// interval; the claim that finds work gives the lock back. When it may not
    /// sleep (a publisher is mid-commit, another relay sleeps, or due work is
    /// being claimed by another replica or waits for room) it looks again soon,
    /// backing off.
    private func claimLoop(_ engine: HTTPDeliveryEngine) async {
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
    private func claim(_ room: Int) async throws -> [ClaimedDelivery] {
        let answered = state.withLock { state in
            state.verdicts.lazy.filter { $0.outcome == .succeeded }.map(\.deliveryID) + state.recording
        }
        return try await store.claim(
            batchSize: min(configuration.claimBatchSize, room), defaultMaxInFlight: configuration.maxInFlight,
            answered: answered)
    }

    private static let firstRecheckDelay = Duration.milliseconds(2)
    private static let longestRecheckDelay = Duration.milliseconds(100)

    private func send(_ claimed: [ClaimedDelivery], through engine: HTTPDeliveryEngine) {
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
        for delivery in claimed {
            do {
                requests.append(try builder.request(for: delivery, now: now))
            } catch {
                unsendable.append(WebhookResponse(
                    tag: delivery.deliveryID, startedAt: now, duration: .zero, statusCode: nil,
                    error: "cannot build the request: \(error)", retryAfter: nil, bodyExcerpt: []))
            }
        }
        if !unsendable.isEmpty { judge(unsendable) }
        engine.submit(requests)
    }

    // MARK: - Judging (on the engine thread)

    private func judge(_ responses: [WebhookResponse]) {
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

    // MARK: - Recorder

    private func recordLoop() async {
        var health = DatabaseHealth(logger: logger, activity: "recording attempts")
        var giveUpAt: ContinuousClock.Instant?
        while true {
            let (batch, stopping) = state.withLock { state in
                let batch = Array(state.verdicts.prefix(Self.recordBatchLimit))
                state.verdicts.removeFirst(batch.count)
                state.recording = batch.filter { $0.outcome == .succeeded }.map(\.deliveryID)
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

    private static let recordBatchLimit = 2_000

    // MARK: - Shutdown

    /// Lets requests in flight finish for the grace period, then aborts and releases the rest.
    private func drain(_ engine: HTTPDeliveryEngine) async {
        let deadline = ContinuousClock.now + configuration.shutdownGracePeriod
        while engine.inFlight > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
            await drainWake.wait(upTo: .milliseconds(100))
        }
        let aborted = await withCheckedContinuation { continuation in
            // shutdown() blocks until the engine thread exits: not on the cooperative pool.
            Thread { continuation.resume(returning: engine.shutdown()) }.start()
        }
        let unfinished = state.withLock { state -> [Int64] in
            let judged = Set(state.verdicts.map(\.deliveryID))
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

    // MARK: - Backlog metrics

    private func observeBacklog() async {
        var health = DatabaseHealth(logger: logger, activity: "reading the backlog")
        while !Task.isCancelled {
            do {
                RelayMetrics.setBacklog(try await store.backlog())
                health.succeeded()
            } catch {
                health.failed(error)
            }
            try? await Task.sleep(for: Self.backlogInterval)
        }
    }

    private static let backlogInterval = Duration.seconds(5)

    // MARK: - Upkeep

    private func upkeep() async {
        var health = DatabaseHealth(logger: logger, activity: "renewing leases")
        let period = configuration.lease / 3
        while !Task.isCancelled {
            try? await Task.sleep(for: period)
            if Task.isCancelled { return }
            do {
                if outstanding > 0 { try await store.renewLeases() }
                let rescued = try await store.rescueExpiredLeases()
                health.succeeded()
                if rescued > 0 {
                    logger.notice("returned deliveries whose lease expired to pending", metadata: ["count": "\(rescued)"])
                    claimWake.signal()
                }
            } catch {
                health.failed(error)
            }
        }
    }
}
