import Foundation
import Logging
import OutboxSQL
import ServiceLifecycle
import Synchronization

/// `outbox-relay run`: the whole delivery pipeline as one `Service`.
///
/// Its loops share the work, one file each (docs/ARCHITECTURE.md draws them):
/// - the **listener** (`Relay+Listener.swift`) turns `NOTIFY outbox_work` into a wake-up of the claimer;
/// - the **claimer** (`Relay+Claimer.swift`) claims due deliveries in batches, builds the signed requests
///   and hands them to the HTTP engine; the slots of max in flight of succeeded
///   requests are free for it before their outcomes are recorded; without a
///   wake-up it polls;
/// - the **HTTP engine** (its own thread, libcurl multi) sends them and reports
///   responses, which are judged at once (`AttemptVerdict`) and queued;
/// - the **recorder** (`Relay+Recorder.swift`) writes queued verdicts in batches (`outbox.record_results`);
/// - **upkeep** (`Relay+Upkeep.swift`) renews this process's leases and rescues expired ones, and the
///   **backlog observer** keeps the backlog metrics.
///
/// On graceful shutdown (SIGTERM, `Relay+Shutdown.swift`) it stops claiming, lets requests in flight
/// finish for the grace period, releases what is still unfinished (not charged),
/// records every verdict, and returns.
public final class Relay: Service, Sendable {
    let configuration: RelayConfiguration
    let logger: Logger
    let store: DeliveryStore
    let builder: WebhookRequestBuilder
    let claimWake = WakeSignal()
    let recordWake = WakeSignal()
    let drainWake = WakeSignal()
    let state = Mutex(PipelineState())
    let listening = Mutex(false)

    /// What the loops and the engine thread share.
    struct PipelineState {
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
}
