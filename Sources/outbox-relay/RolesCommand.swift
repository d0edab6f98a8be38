import ArgumentParser
import OutboxSQL

/// `outbox-relay roles`: creates the four database group roles when they are
/// missing and grants each its rights in this database (`outbox.create_roles()`
/// and `outbox.grant_roles()`, `sql/0016_roles.sql`). Running it again changes
/// nothing.
struct RolesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roles",
        abstract: "Create the outbox_publisher, outbox_reader, outbox_operator and outbox_relay roles and grant them.",
        discussion: "Creating a role needs CREATEROLE; granting needs the schema's owner (the role that runs migrate) "
            + "or a superuser. Roles a DBA created by hand are granted by `outbox-relay migrate` too. "
            + "Then give them to login users, e.g. GRANT outbox_publisher TO app_user;"
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    /// What each role is for, in the order they are listed.
    static let roles: [(name: String, purpose: String)] = [
        ("outbox_publisher", "the application: INSERT into outbox.events, outbox.publish()"),
        ("outbox_reader", "dashboards: every outbox view and table, subscriptions redacted"),
        ("outbox_operator", "the CLI's management commands: subscriptions, replay, purge, tokens"),
        ("outbox_relay", "outbox-relay run"),
    ]

    func run() throws {
        let json = try output.isJSON
        let (created, granted) = try global.withDatabase { connection in
            try connection.withTransaction { connection in
                (try Self.createRoles(connection), try Self.grantRoles(connection))
            }
        }
        let records = Self.roles.map { role in
            OutputRecord([
                "role": .text(role.name),
                "created": .boolean(created.contains(role.name)),
                "granted": .boolean(granted.contains(role.name)),
                "for": .text(role.purpose),
            ])
        }
        try TableOutput.print(records, columns: ["role", "created", "granted", "for"], whenEmpty: "", json: json)
    }

    /// The roles it created (none when all exist).
    private static func createRoles(_ connection: Connection) throws -> Set<String> {
        // Who may grant is checked first, from the catalog: a role that may not
        // even use the schema would otherwise be told it lacks CREATEROLE.
        let row = try connection.query("""
            SELECT current_user::text, n.nspowner::regrole::text, pg_has_role(current_user, n.nspowner, 'USAGE')
            FROM pg_namespace AS n
            WHERE n.nspname = 'outbox'
            """)
        guard row.count == 1 else {
            throw OperatorError("the outbox schema is missing: run `outbox-relay migrate` first")
        }
        let (user, owner) = (try row[0].decode(String.self, at: 0), try row[0].decode(String.self, at: 1))
        guard try row[0].decode(Bool.self, at: 2) else {
            throw OperatorError(
                "granting the roles needs the owner of schema outbox (\(owner)), which \(user) is not: run `outbox-relay roles` "
                    + "as the role that runs `outbox-relay migrate`, or as a superuser")
        }
        do {
            return Set(try connection.query("SELECT outbox.create_roles()").rows.map { try $0.decode(String.self, at: 0) })
        } catch let error as PostgresError where error.sqlState == "42501" {
            // insufficient_privilege: CREATE ROLE without CREATEROLE.
            throw OperatorError(
                "creating the roles needs CREATEROLE, which \(user) lacks: run `outbox-relay roles` as a role with "
                    + "CREATEROLE, or have a DBA create them by hand (README, \"Database roles\") and run `outbox-relay migrate`")
        }
    }

    /// The roles it granted to: those that exist.
    private static func grantRoles(_ connection: Connection) throws -> Set<String> {
        Set(try connection.query("SELECT outbox.grant_roles()").rows.map { try $0.decode(String.self, at: 0) })
    }
}
