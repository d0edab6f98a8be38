import CLibCurl
import Foundation
import Synchronization

/// Makes many webhook POSTs at once with libcurl's multi interface, all driven from one
/// dedicated thread so no blocking C call runs on Swift's cooperative pool.
///
/// Redirects are not followed, TLS is always verified, only http and https are allowed, and a
/// response body is read only up to the excerpt size. Connections are reused across requests
/// (HTTP/1.1 keep-alive, HTTP/2 multiplexing over TLS).
public final class HTTPDeliveryEngine: Sendable {
    public struct Configuration: Sendable {
        /// Sent as `user-agent`, e.g. "outbox-relay/0.1.0".
        public var userAgent: String
        /// How many bytes of each response body to keep; the rest is read and discarded.
        public var responseExcerptBytes: Int = 1024
        /// A custom CA bundle. TLS verification is always on.
        public var caBundlePath: String? = nil
        /// Connections per host at most; 0 leaves libcurl's default (no limit).
        public var maxConnectionsPerHost: Int = 0
        /// Off: loopback, private, link-local, CGNAT, unique-local and metadata addresses are refused.
        public var allowPrivateNetworks: Bool = false

        public init(
            userAgent: String, responseExcerptBytes: Int = 1024, caBundlePath: String? = nil,
            maxConnectionsPerHost: Int = 0, allowPrivateNetworks: Bool = false
        ) {
            self.userAgent = userAgent
            self.responseExcerptBytes = responseExcerptBytes
            self.caBundlePath = caBundlePath
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.allowPrivateNetworks = allowPrivateNetworks
        }
    }

    private enum Phase { case idle, running, stopping, stopped }

    /// What the caller's threads and the engine thread share.
    private struct SharedState {
        var phase = Phase.idle
        var pending: [WebhookRequest] = []
        var inFlight = 0
        var abortedTags: [Int64] = []
    }

    /// Idle easy handles kept for reuse; beyond this they are freed.
    private static let idleHandleLimit = 32
    /// An upper bound on one wait; libcurl's own timers usually wake the loop sooner.
    private static let longestPollMilliseconds: Int32 = 1000

    private let configuration: Configuration
    private let onResponses: @Sendable ([WebhookResponse]) -> Void
    private let multi: CurlMultiHandle
    private let state = Mutex(SharedState())
    private let loopExited = DispatchSemaphore(value: 0)

    /// `onResponses` is called on the engine thread with every batch of finished attempts; it must not block
    /// and must not call `shutdown()`.
    public init(configuration: Configuration, onResponses: @escaping @Sendable ([WebhookResponse]) -> Void) throws {
        guard CurlGlobal.initialization == CURLE_OK else {
            throw HTTPDeliveryEngineError(message: CurlErrorText.setup(CurlGlobal.initialization, option: "curl_global_init"))
        }
        self.configuration = configuration
        self.onResponses = onResponses
        self.multi = try CurlMultiHandle(maxConnectionsPerHost: configuration.maxConnectionsPerHost)
    }

    /// Spawns the engine thread. Requests submitted before this wait for it.
    public func start() throws {
        try state.withLock { (shared: inout SharedState) throws(HTTPDeliveryEngineError) in
            guard shared.phase == .idle else {
                throw HTTPDeliveryEngineError(message: "HTTP delivery engine was already started or shut down; create a new one")
            }
            shared.phase = .running
        }
        let thread = Thread { [self] in runLoop() }
        thread.name = "outbox-relay-http"
        thread.start()
    }

    /// Queues requests and wakes the engine thread. Callable from any thread.
    /// Requests submitted after `shutdown()` are dropped: they were never attempted.
    public func submit(_ requests: [WebhookRequest]) {
        guard !requests.isEmpty else { return }
        let accepted = state.withLock { shared in
            guard shared.phase == .idle || shared.phase == .running else { return false }
            shared.pending.append(contentsOf: requests)
            shared.inFlight += requests.count
            return true
        }
        if accepted { multi.wakeup() }
    }

    /// Requests submitted and not yet reported.
    public var inFlight: Int {
        state.withLock { $0.inFlight }
    }

    /// Stops the loop; aborts what is still running and returns those tags (not reported through
    /// `onResponses`), including requests that were queued but not yet started. Blocks until the
    /// engine thread has stopped. Calling it again returns an empty list.
    public func shutdown() -> [Int64] {
        let (mustWait, neverStarted) = state.withLock { shared -> (Bool, [Int64]) in
            switch shared.phase {
            case .idle:
                shared.phase = .stopped
                let tags = shared.pending.map(\.tag)
                shared.pending = []
                shared.inFlight = 0
                return (false, tags)
            case .running:
                shared.phase = .stopping
                return (true, [])
            case .stopping, .stopped:
                return (false, [])
            }
        }
        guard mustWait else { return neverStarted }
        multi.wakeup()
        loopExited.wait()
        return state.withLock { shared in
            defer { shared.abortedTags = [] }
            return shared.abortedTags
        }
    }

    // MARK: - The engine thread

    private func runLoop() {
        var active: [UnsafeMutableRawPointer: CurlEasyHandle] = [:]
        var idle: [CurlEasyHandle] = []

        while true {
            let (incoming, stopping) = state.withLock { shared in
                defer { shared.pending = [] }
                return (shared.pending, shared.phase == .stopping)
            }
            if stopping {
                var aborted = incoming.map(\.tag)
                for (raw, handle) in active {
                    _ = curl_multi_remove_handle(multi.raw, raw)
                    aborted.append(handle.tag)
                }
                // Easy handles go before the multi handle, which the engine frees in its deinit.
                active = [:]
                idle = []
                state.withLock { shared in
                    shared.abortedTags = aborted
                    shared.inFlight = 0
                    shared.phase = .stopped
                }
                loopExited.signal()
                return
            }

            var finished: [WebhookResponse] = []
            for request in incoming {
                begin(request, active: &active, idle: &idle, finished: &finished)
            }

            var runningTransfers: Int32 = 0
            let performed = curl_multi_perform(multi.raw, &runningTransfers)
            collectFinished(active: &active, idle: &idle, finished: &finished)
            if performed != CURLM_OK {
                failAll(CurlErrorText.multi(performed, call: "curl_multi_perform"), active: &active, finished: &finished)
            }

            if !finished.isEmpty {
                let count = finished.count
                state.withLock { $0.inFlight -= count }
                onResponses(finished)
            }

            let polled = curl_multi_poll(multi.raw, nil, 0, Self.longestPollMilliseconds, nil)
            if polled != CURLM_OK {
                var failed: [WebhookResponse] = []
                failAll(CurlErrorText.multi(polled, call: "curl_multi_poll"), active: &active, finished: &failed)
                if !failed.isEmpty {
                    let count = failed.count
                    state.withLock { $0.inFlight -= count }
                    onResponses(failed)
                }
                // Only a broken multi handle gets here; pausing keeps the loop from spinning a core.
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    private func begin(
        _ request: WebhookRequest,
        active: inout [UnsafeMutableRawPointer: CurlEasyHandle],
        idle: inout [CurlEasyHandle],
        finished: inout [WebhookResponse]
    ) {
        let handle: CurlEasyHandle
        if let reused = idle.popLast() {
            handle = reused
        } else {
            do {
                handle = try CurlEasyHandle(configuration: configuration)
            } catch {
                finished.append(Self.unstarted(request, reason: error.message))
                return
            }
        }
        if let problem = handle.prepare(request) {
            finished.append(handle.refused(because: problem))
            handle.clearTransfer()
            idle.append(handle)
            return
        }
        let added = curl_multi_add_handle(multi.raw, handle.raw)
        guard added == CURLM_OK else {
            finished.append(handle.refused(because: CurlErrorText.multi(added, call: "curl_multi_add_handle")))
            handle.clearTransfer()
            return
        }
        active[handle.raw] = handle
    }

    private func collectFinished(
        active: inout [UnsafeMutableRawPointer: CurlEasyHandle],
        idle: inout [CurlEasyHandle],
        finished: inout [WebhookResponse]
    ) {
        var queuedMessages: Int32 = 0
        while let message = curl_multi_info_read(multi.raw, &queuedMessages) {
            guard message.pointee.msg == CURLMSG_DONE,
                let easy = message.pointee.easy_handle,
                let handle = active.removeValue(forKey: easy)
            else { continue }
            // The message is only valid until the handle is removed, so read it first.
            finished.append(handle.response(result: ccurl_msg_result(message)))
            _ = curl_multi_remove_handle(multi.raw, easy)
            handle.clearTransfer()
            if idle.count < Self.idleHandleLimit { idle.append(handle) }
        }
    }

    private func failAll(_ reason: String, active: inout [UnsafeMutableRawPointer: CurlEasyHandle], finished: inout [WebhookResponse]) {
        for (raw, handle) in active {
            _ = curl_multi_remove_handle(multi.raw, raw)
            finished.append(handle.refused(because: reason))
        }
        active = [:]
    }

    private static func unstarted(_ request: WebhookRequest, reason: String) -> WebhookResponse {
        WebhookResponse(
            tag: request.tag, startedAt: Date(), duration: .zero, statusCode: nil,
            error: reason, retryAfter: nil, bodyExcerpt: []
        )
    }
}
