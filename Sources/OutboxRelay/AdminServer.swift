import Hummingbird
import Logging
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

/// `host:port` of a listener, e.g. `0.0.0.0:9090`, `127.0.0.1:0`, `[::]:9090`.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`; the message names what is wrong.
    public init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":") else {
            throw ConfigurationError(message: "\"\(text)\" is not a listen address: write host:port, e.g. 0.0.0.0:9090")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else {
            throw ConfigurationError(message: "\"\(text)\" has no usable host: write host:port, e.g. 0.0.0.0:9090")
        }
        guard let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw ConfigurationError(message: "\"\(text)\" has no valid port (0-65535)")
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
