import CLibPQ
import Foundation

/// An error from PostgreSQL or from talking to it. Its text never contains a
/// connection string or password: libpq's connection messages are redacted.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is, for callers that react differently.
    public enum Code: String, Sendable {
        /// Could not open a connection (server down, bad credentials, bad URL).
        case connectionFailed
        /// An open connection broke (server restart, terminated backend, network).
        case connectionLost
        /// The server refused the statement; `sqlState` says why.
        case server
        /// A value could not be decoded into the requested Swift type.
        case decoding
        /// The migrations recorded in the database do not match this binary's.
        case migration
    }

    public var code: Code
    /// SQLSTATE, e.g. "23505" for a unique violation; nil when not from the server.
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?

    public init(code: Code, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
    }

    public var description: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += "; detail: \(detail)" }
        if let hint { text += "; hint: \(hint)" }
        return text
    }

    /// True for unique-key violations (SQLSTATE 23505), e.g. a duplicate `event_id`.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// The fields of a failed result, as the server sent them.
    init(result: OpaquePointer?, connection: OpaquePointer?, lost: Bool) {
        func field(_ code: Character) -> String? {
            guard let result, let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let sqlState = field("C")
        let primary = field("M")
        if lost || (sqlState == nil && primary == nil) {
            let raw = connection.flatMap { PQerrorMessage($0) }.map { String(cString: $0) } ?? "no connection"
            self.init(code: lost ? .connectionLost : .server, message: Self.redact(raw), sqlState: sqlState)
        } else {
            self.init(code: .server, message: primary ?? "unknown server error", sqlState: sqlState,
                      detail: field("D"), hint: field("H"))
        }
    }

    /// libpq's messages can echo parts of a connection string (a malformed URI,
    /// an unknown option); keep the first lines and hide anything that could be
    /// a credential.
    static func redact(_ text: String) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).prefix(2)
        var joined = lines.joined(separator: "; ").trimmingCharacters(in: .whitespaces)
        let parsingConnectionString = ["connection info string", "URI", "connection option", "conninfo"]
            .contains { joined.contains($0) }
        if parsingConnectionString {
            joined = joined.replacingOccurrences(of: "\"[^\"]*\"", with: "\"[redacted]\"", options: .regularExpression)
        }
        return joined.split(separator: " ").map { word -> String in
            let lower = word.lowercased()
            return lower.contains("://") || lower.contains("@") || lower.contains("password=") ? "[redacted]" : String(word)
        }.joined(separator: " ")
    }
}
