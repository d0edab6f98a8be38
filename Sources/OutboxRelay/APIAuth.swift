import Crypto
import Foundation
import Hummingbird
import OutboxSQL

/// What an admin API token may do: `read` calls GET endpoints, `admin` everything.
public enum APIScope: String, Sendable, CaseIterable {
    case read, admin
}

/// Admin API bearer tokens: `obx_` + base64url of 32 random bytes. Only the
/// SHA-256 (hex) of a token is stored, in `outbox.api_tokens`.
public enum APIToken {
    /// A new random token.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let base64url = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "obx_" + base64url
    }

    /// The stored form of a token: lowercase hex SHA-256.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Compares two strings in time that depends only on their lengths.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let left = Array(a.utf8), right = Array(b.utf8)
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}

/// Checks the `Authorization: Bearer …` header of an API request against the
/// unrevoked tokens and the scope the request needs.
struct APIAuthenticator: Sendable {
    let database: DatabaseClient

    /// Returns the caller, or throws 401 (no or unknown token) / 403 (read token on a write).
    func authorize(_ request: Request, needs scope: APIScope) async throws -> APICaller {
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw APIError(.unauthorized, "unauthorized", "send Authorization: Bearer <token>; `outbox-relay token create` makes one")
        }
        let presented = APIToken.hash(String(header.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces))
        // Every live token's hash is compared in constant time, so timing tells
        // nothing about how close a guess was.
        let tokens = try await database.run { connection in
            try connection.query("""
                SELECT id, name, token_hash, scope
                FROM outbox.api_tokens
                WHERE revoked_at IS NULL
                """).rows.map { row in
                (id: try row.decode(Int64.self, at: 0), name: try row.decode(String.self, at: 1),
                 hash: try row.decode(String.self, at: 2), scope: try row.decode(String.self, at: 3))
            }
        }
        var match: (id: Int64, name: String, scope: String)?
        for token in tokens where APIToken.constantTimeEqual(token.hash, presented) {
            match = (token.id, token.name, token.scope)
        }
        guard let match else {
            throw APIError(.unauthorized, "unauthorized", "the bearer token is unknown or revoked")
        }
        if scope == .admin && match.scope != APIScope.admin.rawValue {
            throw APIError(.forbidden, "forbidden", "token \"\(match.name)\" has scope \(match.scope); this request needs admin")
        }
        let id = match.id
        _ = try await database.run { connection in
            try connection.query("UPDATE outbox.api_tokens SET last_used_at = now() WHERE id = $1", [id]).rowsAffected
        }
        return APICaller(name: match.name, scope: match.scope == APIScope.admin.rawValue ? .admin : .read)
    }
}

/// Who sent an authorized request: the token's name and scope.
struct APICaller: Sendable {
    let name: String
    let scope: APIScope
}
