import CLibPQ
import Foundation

/// Where to connect: a `postgresql://` URL or a libpq `key=value` string. Empty
/// means "libpq's defaults", i.e. the `PG…` environment variables.
/// Its description never shows a password.
public struct ConnectionTarget: Sendable, CustomStringConvertible {
    public let conninfo: String

    /// Checks the string's syntax with libpq; the error never echoes it.
    public init(_ conninfo: String = "") throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            let reason = errorMessage.map { String(cString: $0) } ?? "unreadable connection string"
            errorMessage.map { PQfreemem($0) }
            throw PostgresError(code: .connectionFailed, message: "invalid database URL: \(PostgresError.redact(reason))")
        }
        PQconninfoFree(options)
        self.conninfo = conninfo
    }

    /// host, port, database and user, for logs; never the password.
    public var description: String {
        guard let shown = options() else { return "(invalid database URL)" }
        let env = { (name: String) in getenv(name).map { String(cString: $0) } }
        let host = shown["host"] ?? shown["hostaddr"] ?? env("PGHOST") ?? "localhost"
        let port = shown["port"] ?? env("PGPORT") ?? "5432"
        let database = shown["dbname"] ?? env("PGDATABASE") ?? shown["user"] ?? env("PGUSER") ?? "(default)"
        let user = shown["user"] ?? env("PGUSER") ?? "(default)"
        return "host=\(host) port=\(port) dbname=\(database) user=\(user)"
    }

    /// The password in the string, if any: only to scrub it from libpq's messages.
    var password: String? { options()?["password"] }

    /// The options the string sets, by keyword; nil when it does not parse.
    private func options() -> [String: String]? {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            errorMessage.map { PQfreemem($0) }
            return nil
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                values[String(cString: keyword)] = String(cString: value)
            }
            option += 1
        }
        return values
    }
}
