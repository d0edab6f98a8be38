import Foundation
import Hummingbird
import OutboxOperations
import OutboxSQL

/// A refusal of the admin API, sent as `{"error": {"code": "...", "message": "..."}}`.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    static func badRequest(_ message: String) -> APIError { APIError(.badRequest, "bad_request", message) }
    static func notFound(_ message: String) -> APIError { APIError(.notFound, "not_found", message) }
    static func conflict(_ message: String) -> APIError { APIError(.conflict, "conflict", message) }
    static let tooLarge = APIError(.contentTooLarge, "too_large", "the request body is over the 1 MiB limit")

    /// The JSON error response.
    var response: Response {
        let body: [String: [String: String]] = ["error": ["code": code, "message": message]]
        let data = (try? JSONEncoder().encode(body)) ?? Data("{\"error\":{\"code\":\"internal\",\"message\":\"\"}}".utf8)
        return APIResponse.json(status, data)
    }

    /// Maps any error thrown while answering a request to an API error. The
    /// schema's own refusals (check_violation, invalid_parameter_value) are 422
    /// with PostgreSQL's message; other database errors are 500 without detail.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as OperationError:
            switch error.kind {
            case .notFound: return .notFound(error.description)
            case .invalid: return .badRequest(error.description)
            case .conflict: return .conflict(error.description)
            }
        case let error as PostgresError:
            let state = error.sqlState ?? ""
            switch state {
            case "22021", "22P05":
                // PostgreSQL text cannot hold NUL (\u0000) characters.
                return .badRequest("strings may not contain NUL (\\u0000) characters")
            case "23514", "23502",
                 _ where state.hasPrefix("22"):
                // check_violation, not_null_violation and data exceptions: the values were refused.
                return APIError(.unprocessableContent, "invalid", error.message)
            case "23505", "55000":
                return .conflict(error.message)
            case "P0002":
                return .notFound(error.message)
            default:
                return APIError(.internalServerError, "database", "the database refused the request; see the relay's log")
            }
        case let error as HTTPError:
            if error.status == .contentTooLarge { return .tooLarge }
            if error.status == .notFound { return .notFound("no such endpoint; openapi.yaml lists them") }
            if error.status == .methodNotAllowed { return APIError(.methodNotAllowed, "method_not_allowed", "this endpoint does not take that method") }
            return APIError(error.status, "http", error.body ?? error.status.reasonPhrase)
        default:
            return APIError(.internalServerError, "internal", "internal error; see the relay's log")
        }
    }
}

/// Helpers for JSON responses.
enum APIResponse {
    static func json(_ status: HTTPResponse.Status, _ data: Data, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// An encodable value as JSON.
    static func json(_ status: HTTPResponse.Status, encoding value: some Encodable) throws -> Response {
        json(status, try JSONEncoder().encode(value))
    }

    /// A timestamp as the API writes it: RFC 3339 in UTC with fractional seconds.
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// A response whose body is JSON text built by PostgreSQL.
    static func json(_ status: HTTPResponse.Status, text: String, headers: HTTPFields = [:]) -> Response {
        json(status, Data(text.utf8), headers: headers)
    }
}
