import ArgumentParser
import Foundation
import OutboxAdmin
import OutboxRelay
import OutboxSQL

/// `outbox-relay token …`: bearer tokens of the admin API (OUTBOX_API_LISTEN).
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke admin API tokens.",
        subcommands: [TokenCreateCommand.self, TokenListCommand.self, TokenRevokeCommand.self]
    )
}

/// `token create NAME --scope read|admin`: prints the token once; only its SHA-256 is stored.
struct TokenCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create an admin API token and print it (shown only this once).",
        discussion: "A read token may call GET endpoints; an admin token may change things too.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "A name for the token, e.g. the person or system that uses it.") var name: String
    @Option(help: "read or admin.") var scope: String = "read"

    func validate() throws {
        guard APIScope(rawValue: scope) != nil else { throw ValidationError("--scope must be read or admin, not \"\(scope)\"") }
        guard !name.isEmpty, name.count <= 128 else { throw ValidationError("the token name must be 1 to 128 characters") }
    }

    func run() throws {
        let json = try output.isJSON
        let token = APIToken.generate()
        try global.withDatabase { connection in
            do {
                _ = try connection.query(
                    "INSERT INTO outbox.api_tokens (name, token_hash, scope) VALUES ($1, $2, $3)",
                    [name, APIToken.hash(token), scope])
            } catch let error as PostgresError where error.isUniqueViolation {
                throw OperatorError("a token is already named \"\(name)\": revoke it or choose another name")
            }
        }
        try TableOutput.printRow(OutputRecord([
            "name": .text(name), "scope": .text(scope), "token": .text(token),
        ]), json: json)
    }
}

/// `token list`: names, scopes and use; never a token.
struct TokenListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List admin API tokens (never the tokens themselves).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let json = try output.isJSON
        let records = try global.withDatabase { connection in
            try connection.query("""
                SELECT name, scope, created_at, last_used_at, revoked_at
                FROM outbox.api_tokens
                ORDER BY name
                """).rows.map { row in
                OutputRecord([
                    "name": .text(try row.decode(String.self, at: 0)),
                    "scope": .text(try row.decode(String.self, at: 1)),
                    "created_at": .timestamp(try row.decode(Date.self, at: 2)),
                    "last_used_at": .timestamp(try row.decode(Date?.self, at: 3)),
                    "revoked_at": .timestamp(try row.decode(Date?.self, at: 4)),
                ])
            }
        }
        try TableOutput.print(records, columns: ["name", "scope", "created_at", "last_used_at", "revoked_at"],
                              whenEmpty: "no tokens (create one with `outbox-relay token create NAME --scope read`)", json: json)
    }
}

/// `token revoke NAME`: the token stops working at once; the row stays for the record.
struct TokenRevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke an admin API token.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "The token's name.") var name: String

    func run() throws {
        let json = try output.isJSON
        let revoked = try global.withDatabase { connection in
            try connection.query(
                "UPDATE outbox.api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1", [name]).rowsAffected
        }
        guard revoked == 1 else { throw OperatorError("no token is named \"\(name)\": `outbox-relay token list` shows them") }
        try TableOutput.printRow(OutputRecord(["name": .text(name), "revoked": .boolean(true)]), json: json)
    }
}
