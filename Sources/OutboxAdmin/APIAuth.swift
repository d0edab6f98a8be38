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
        // Looked up by its hash through the unique index: the cost does not grow
        // with the number of tokens, and the timing says nothing a guess could use
        // (it would need a token whose SHA-256 is near the real one's).
        // last_used_at is written at most once a minute per token, so a GET stays a
        // read; the UPDATE runs in the same statement and finds nothing to do otherwise.
        let found = try await database.run { connection in
            try connection.query("""
                WITH token AS (
                    SELECT id, name, scope, last_used_at
                    FROM outbox.api_tokens
                    WHERE token_hash = $1
                      AND revoked_at IS NULL
                ),
                touched AS (
                    UPDATE outbox.api_tokens AS t
                    SET last_used_at = now()
                    FROM token
                    WHERE t.id = token.id
                      AND (token.last_used_at IS NULL OR token.last_used_at < now() - interval '1 minute')
                )
                SELECT name, scope FROM token
                """, [presented]).rows.map { row in
                (name: try row.decode(String.self, named: "name"), scope: try row.decode(String.self, named: "scope"))
            }
        }
        guard let match = found.first else {
            throw APIError(.unauthorized, "unauthorized", "the bearer token is unknown or revoked")
        }
        if scope == .admin && match.scope != APIScope.admin.rawValue {
            throw APIError(.forbidden, "forbidden", "token \"\(match.name)\" has scope \(match.scope); this request needs admin")
        }
        return APICaller(name: match.name, scope: match.scope == APIScope.admin.rawValue ? .admin : .read)
    }
}

/// Who sent an authorized request: the token's name and scope.
struct APICaller: Sendable {
    let name: String
    let scope: APIScope
}
