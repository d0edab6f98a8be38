import Foundation

/// A Swift value sent to PostgreSQL as a bind parameter, in text format.
/// Values never become part of the SQL text.
public protocol PostgresEncodable: Sendable {
    /// The parameter's text form; nil sends SQL NULL.
    var postgresText: String? { get }
}

/// A Swift value read from a column in text format.
public protocol PostgresDecodable {
    /// Decodes the column's text; `text` is nil for SQL NULL.
    static func decode(postgresText text: String?) throws -> Self
}

/// A type that is never NULL decodes from non-NULL text only.
public protocol PostgresNonNullDecodable: PostgresDecodable {
    init?(postgresValue text: String)
}

extension PostgresNonNullDecodable {
    public static func decode(postgresText text: String?) throws -> Self {
        guard let text else {
            throw PostgresError(code: .decoding, message: "unexpected NULL where \(Self.self) was expected")
        }
        guard let value = Self(postgresValue: text) else {
            throw PostgresError(code: .decoding, message: "cannot read \(Self.self) from \"\(text.prefix(64))\"")
        }
        return value
    }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresText: String? { self?.postgresText }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(postgresText text: String?) throws -> Self {
        guard let text else { return nil }
        return try Wrapped.decode(postgresText: text)
    }
}

extension String: PostgresEncodable, PostgresNonNullDecodable {
    public var postgresText: String? { self }
    public init?(postgresValue text: String) { self = text }
}

extension Int64: PostgresEncodable, PostgresNonNullDecodable {
    public var postgresText: String? { String(self) }
    public init?(postgresValue text: String) { self.init(text) }
}

extension Int: PostgresEncodable, PostgresNonNullDecodable {
    public var postgresText: String? { String(self) }
    public init?(postgresValue text: String) { self.init(text) }
}

extension Int32: PostgresEncodable, PostgresNonNullDecodable {
    public var postgresText: String? { String(self) }
    public init?(postgresValue text: String) { self.init(text) }
}

extension Double: PostgresEncodable, PostgresNonNullDecodable {
    public var postgresText: String? { String(self) }
    public init?(postgresValue text: String) { self.init(text) }
}

extension Bool: PostgresEncodable, PostgresNonNullDecodable {
    public var postgresText: String? { self ? "t" : "f" }
    public init?(postgresValue text: String) {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

extension Date: PostgresEncodable, PostgresNonNullDecodable {
    /// ISO 8601 with microseconds, in UTC; the server reads it as timestamptz.
    public var postgresText: String? { PostgresTimestamp.format(self) }
    public init?(postgresValue text: String) {
        guard let date = PostgresTimestamp.parse(text) else { return nil }
        self = date
    }
}

extension Duration: PostgresEncodable {
    /// An interval literal such as "1.5 seconds".
    public var postgresText: String? {
        let (seconds, attoseconds) = components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return "\(micros) microseconds"
    }
}

/// A `json`/`jsonb` value, kept as the server's JSON text.
public struct PostgresJSON: PostgresEncodable, PostgresNonNullDecodable, Equatable, Hashable {
    public var text: String
    public init(text: String) { self.text = text }
    public init?(postgresValue text: String) { self.text = text }
    public var postgresText: String? { text }

    /// Encodes a value with `JSONEncoder`.
    public init<T: Encodable>(encoding value: T) throws {
        text = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    /// Decodes the JSON text with `JSONDecoder`.
    public func decode<T: Decodable>(as type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}

extension Array: PostgresEncodable where Element: PostgresEncodable {
    /// An array literal such as `{1,2,NULL}` or `{"a b","c\"d"}`.
    /// (A closure, not a key path: a key path is projected through the runtime per element.)
    public var postgresText: String? { PostgresArray.encode(map { $0.postgresText }) }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    public static func decode(postgresText text: String?) throws -> [Element] {
        guard let text else {
            throw PostgresError(code: .decoding, message: "unexpected NULL where an array was expected")
        }
        guard let items = PostgresArray.decode(text) else {
            throw PostgresError(code: .decoding, message: "cannot read an array from \"\(text.prefix(64))\"")
        }
        return try items.map { try Element.decode(postgresText: $0) }
    }
}
