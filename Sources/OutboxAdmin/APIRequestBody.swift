import Foundation
import Hummingbird
import OutboxSQL

/// A JSON value as sent by a client, with its type kept exactly (so `"1"`, `1`
/// and `true` are told apart when checking a request body).
enum JSONValue: Codable, Sendable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// The JSON object body of a request, checked field by field: unknown fields
/// and wrong types are a 400 naming the field.
struct APIRequestBody: Sendable {
    /// The largest body accepted (SPEC: the payload limit is 1 MiB).
    static let limit = 1 << 20

    let fields: [String: JSONValue]
    /// The body's exact bytes (for idempotency comparisons).
    let raw: Data

    /// Reads and parses the body; `allowed` names the fields it may have. With
    /// `optional`, no body at all reads as `{}` (every field is optional then).
    static func read(_ request: inout Request, allowed: Set<String>, optional: Bool = false) async throws -> APIRequestBody {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw APIError.tooLarge }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            // NIO's NIOTooManyBytesError (a chunked body over the limit); NIOCore is not imported here.
            if String(describing: error).contains("TooManyBytes") { throw APIError.tooLarge }
            throw error
        }
        let data = Data(buffer: buffer)
        if data.isEmpty && optional { return APIRequestBody(fields: [:], raw: Data("{}".utf8)) }
        guard !data.isEmpty else { throw APIError.badRequest("the request body must be a JSON object") }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw APIError.badRequest("the request body is not valid JSON")
        }
        guard case .object(let fields) = value else { throw APIError.badRequest("the request body must be a JSON object") }
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError.badRequest("unknown field \"\(unknown)\"; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
        return APIRequestBody(fields: fields, raw: data)
    }

    func has(_ name: String) -> Bool { fields[name] != nil }

    func string(_ name: String, required: Bool = false) throws -> String? {
        switch fields[name] {
        case nil, .null?:
            if required { throw APIError.badRequest("field \"\(name)\" is required (a string)") }
            return nil
        case .string(let value)?: return value
        default: throw APIError.badRequest("field \"\(name)\" must be a string")
        }
    }

    func bool(_ name: String) throws -> Bool? {
        switch fields[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw APIError.badRequest("field \"\(name)\" must be true or false")
        }
    }

    /// A duration given as a number of seconds, zero or more.
    func seconds(_ name: String, required: Bool = false) throws -> Duration? {
        switch fields[name] {
        case nil, .null?:
            if required { throw APIError.badRequest("field \"\(name)\" is required (a number of seconds, 0 or more)") }
            return nil
        case .number(let value)? where value >= 0 && value <= 1e10:
            return .microseconds(Int64((value * 1_000_000).rounded()))
        default: throw APIError.badRequest("field \"\(name)\" must be a number of seconds, 0 or more")
        }
    }

    func strings(_ name: String, required: Bool = false) throws -> [String]? {
        switch fields[name] {
        case nil, .null?:
            if required { throw APIError.badRequest("field \"\(name)\" is required (an array of strings)") }
            return nil
        case .array(let items)?:
            return try items.map { item in
                guard case .string(let text) = item else { throw APIError.badRequest("field \"\(name)\" must be an array of strings") }
                return text
            }
        default: throw APIError.badRequest("field \"\(name)\" must be an array of strings")
        }
    }

    /// Checks that a field, when present, is a JSON object; its value is read
    /// in SQL from `json` (`$n::jsonb -> 'field'`), so numbers keep their exact text.
    func checkObject(_ name: String) throws {
        _ = try object(name)
    }

    /// A field that must be a JSON object, as JSON for PostgreSQL (which checks its values).
    func object(_ name: String) throws -> PostgresJSON? {
        switch fields[name] {
        case nil, .null?: return nil
        case .object(let members)?:
            return PostgresJSON(text: String(decoding: try JSONEncoder().encode(members), as: UTF8.self))
        default: throw APIError.badRequest("field \"\(name)\" must be a JSON object")
        }
    }

    /// The whole body as a bind parameter.
    var json: PostgresJSON { PostgresJSON(text: String(decoding: raw, as: UTF8.self)) }
}
