import Foundation
import Hummingbird
import Logging
import OutboxRelay
import OutboxSQL
import ServiceLifecycle

/// The JSON admin API (`OUTBOX_API_LISTEN`, off unless set), described by
/// `openapi.yaml`. Every API request needs `Authorization: Bearer <token>`: a
/// `read` token for GET, an `admin` token for writes. No CORS headers are sent.
/// The console's static files (`/console`) are public; they hold no data.
public enum APIServer {
    /// A Hummingbird application serving `/api/v1/…` and `/console` on `address`, as a `Service`.
    /// `onListening` receives the bound port (useful with port 0).
    public static func make(
        address: ListenAddress,
        database target: ConnectionTarget,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some Service {
        let database = DatabaseClient(target: target, name: "api")
        let router = Router()
        router.add(middleware: APIFallbackMiddleware())
        let routes = APIRoutes(router: router, authenticator: APIAuthenticator(database: database), logger: logger)
        APISubscriptions(database: database).register(on: routes)
        APIDeliveries(database: database).register(on: routes)
        APIEvents(database: database).register(on: routes)
        APIStats(database: database).register(on: routes)
        // Who the bearer is: the console uses it to log in and to hide what a read token may not do.
        routes.add(.get, "/api/v1/token") { _, _, caller in
            APIResponse.json(.ok, try JSONEncoder().encode(["name": caller.name, "scope": caller.scope.rawValue]))
        }
        Console.register(on: router)
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .warning)
        let application = Application(
            router: routes.router,
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "outbox-relay"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? address.port) },
            logger: serverLogger)
        return APIService(application: application, database: database)
    }
}

/// Runs the application and closes the API's database connection when it stops.
struct APIService<Inner: Service>: Service {
    let application: Inner
    let database: DatabaseClient

    func run() async throws {
        defer { database.close() }
        try await application.run()
    }
}

/// Registers API handlers behind authorization and JSON error mapping.
struct APIRoutes {
    typealias Handler = @Sendable (inout Request, BasicRequestContext) async throws -> Response
    typealias CallerHandler = @Sendable (inout Request, BasicRequestContext, APICaller) async throws -> Response

    let router: Router<BasicRequestContext>
    let authenticator: APIAuthenticator
    let logger: Logger

    /// Adds `method path`; GET needs a read token, every other method an admin token.
    func add(_ method: HTTPRequest.Method, _ path: RouterPath, _ handler: @escaping Handler) {
        add(method, path) { request, context, _ in try await handler(&request, context) }
    }

    /// Adds `method path` whose handler also learns who is calling.
    func add(_ method: HTTPRequest.Method, _ path: RouterPath, _ handler: @escaping CallerHandler) {
        let authenticator = self.authenticator, logger = self.logger
        router.on(path, method: method) { request, context in
            var request = request
            do {
                let caller = try await authenticator.authorize(request, needs: method == .get ? .read : .admin)
                return try await handler(&request, context, caller)
            } catch {
                let apiError = APIError.from(error)
                if apiError.status.code >= 500 {
                    logger.error("admin API request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
                }
                return apiError.response
            }
        }
    }
}

/// Unknown paths and methods get the same JSON error body as everything else.
struct APIFallbackMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return APIError.from(error).response
        }
    }
}

extension BasicRequestContext {
    /// A path parameter the route guarantees.
    func parameter(_ name: String) throws -> String {
        guard let value = parameters.get(name) else { throw APIError.badRequest("missing path parameter \(name)") }
        return value
    }
}
