import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import OutboxAdmin
import OutboxRelay
import OutboxSQL
import ServiceLifecycle
import Testing
import TestSupport

/// The admin API started in-process on 127.0.0.1 port 0 against a fresh
/// migrated database, with one read and one admin token.
final class APITestServer: Sendable {
    let database: TestDatabase
    let port: Int
    let readToken: String
    let adminToken: String
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// One answer of the API.
    struct Answer: Sendable, CustomStringConvertible {
        let status: Int
        let body: Data
        let headers: [String: String]
        var text: String { String(decoding: body, as: UTF8.self) }
        var description: String { "\(status) \(text)" }

        /// The body as a JSON object.
        func json(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
            let value = try JSONSerialization.jsonObject(with: body)
            return try #require(value as? [String: Any], "not a JSON object: \(text)", sourceLocation: sourceLocation)
        }

        /// The `error.code` of a JSON error body.
        var errorCode: String? {
            ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])
                .flatMap { $0["error"] as? [String: Any] }
                .flatMap { $0["code"] as? String }
        }
    }

    init() async throws {
        database = try TestDatabase()
        readToken = APIToken.generate()
        adminToken = APIToken.generate()
        let connection = try database.connect()
        _ = try connection.query(
            "INSERT INTO outbox.api_tokens (name, token_hash, scope) VALUES ('reader', $1, 'read'), ('operator', $2, 'admin')",
            [APIToken.hash(readToken), APIToken.hash(adminToken)])
        var logger = Logger(label: "outbox-relay-api-test")
        logger.logLevel = .notice
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let api = APIServer.make(
            address: ListenAddress(host: "127.0.0.1", port: 0), database: database.target, logger: logger,
            onListening: { port in continuation.yield(port) })
        let group = ServiceGroup(configuration: .init(services: [.init(service: api)], logger: logger))
        self.group = group
        task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestDatabaseError("the API did not start listening") }
        self.port = port
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// Runs `body` with a started server and stops it afterwards.
    static func running(_ body: (APITestServer) async throws -> Void) async throws {
        let server = try await APITestServer()
        do {
            try await body(server)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    enum Auth { case none, read, admin, custom(String) }

    /// Sends one request; any status is an answer.
    func request(
        _ method: String, _ path: String, auth: Auth = .admin, json: String? = nil, body: Data? = nil,
        headers: [String: String] = [:]
    ) async throws -> Answer {
        let url = try #require(URL(string: "http://127.0.0.1:\(port)\(path)"))
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: 10)
        request.httpMethod = method
        switch auth {
        case .none: break
        case .read: request.setValue("Bearer \(readToken)", forHTTPHeaderField: "Authorization")
        case .admin: request.setValue("Bearer \(adminToken)", forHTTPHeaderField: "Authorization")
        case .custom(let value): request.setValue(value, forHTTPHeaderField: "Authorization")
        }
        if let json {
            request.httpBody = Data(json.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        } else if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await Self.session.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields {
            fields[String(describing: key).lowercased()] = String(describing: value)
        }
        return Answer(status: http.statusCode, body: data, headers: fields)
    }

    /// Runs one SQL statement and decodes the first column of the first row.
    func scalar<T: PostgresDecodable>(_ sql: String, _ parameters: [any PostgresEncodable] = [], as type: T.Type = T.self) throws -> T {
        try database.scalar(sql, parameters, as: type)
    }

    private static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.connectionProxyDictionary = [:]
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        return URLSession(configuration: configuration)
    }()
}
