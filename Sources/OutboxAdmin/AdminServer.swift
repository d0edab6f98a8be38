import Hummingbird
import Logging
import OutboxRelay
import Prometheus
import ServiceLifecycle

/// The admin port (SPEC §7): `GET /healthz` (the process is alive), `GET /readyz`
/// (200 when ready, else 503 with the reason), `GET /metrics` (Prometheus text).
public enum AdminServer {
    /// A Hummingbird application serving the three endpoints on `address`, as a `Service`.
    /// `onListening` receives the bound port (useful with port 0).
    public static func make(
        address: ListenAddress,
        readiness: ReadinessMonitor,
        registry: PrometheusCollectorRegistry,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some Service {
        let router = Router()
        router.get("healthz") { _, _ in "ok\n" }
        router.get("readyz") { _, _ -> Response in
            if let reason = readiness.notReadyReason {
                return textResponse(.serviceUnavailable, "not ready: \(reason)\n")
            }
            return textResponse(.ok, "ready\n")
        }
        router.get("metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .warning)  // no line per scrape
        return Application(
            router: router,
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "outbox-relay"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? address.port) },
            logger: serverLogger)
    }

    private static func textResponse(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
