import OutboxSQL

/// The relay's schema: the `sql/` files, embedded in the binary at build time
/// (SwiftPM `embedInCode`), so `outbox-relay migrate` works outside the source tree.
public enum OutboxSchema {
    /// Every migration, in order. A new `sql/NNNN_name.sql` file needs its line
    /// here; a test checks that this list and the folder agree.
    public static let migrations: [Migration] = [
        // 0001 since indexes the deliveries table only while it is one (0008 makes it a view).
        migration(1, "tables", PackageResources._001_tables_sql,
                  formerly: ["c293e69c82441d12300f63369b04b3b36eb55a8950de73d0fa9ef49820ccc5d7"]),
        migration(2, "validation", PackageResources._002_validation_sql),
        migration(3, "functions", PackageResources._003_functions_sql),
        migration(4, "views", PackageResources._004_views_sql),
        // 0005 since leaves its function bodies unchecked until called (0010 replaces them).
        migration(5, "relay", PackageResources._005_relay_sql,
                  formerly: ["97ea6e36a4e06783feccacf982c1702a0e4d608dfe22da9b472344a5233df90e"]),
        migration(6, "retention", PackageResources._006_retention_sql),
        migration(7, "api_tokens", PackageResources._007_api_tokens_sql),
        migration(8, "storage", PackageResources._008_storage_sql),
        migration(9, "fan_out", PackageResources._009_fan_out_sql),
        migration(10, "delivery", PackageResources._010_delivery_sql),
        migration(11, "views", PackageResources._011_views_sql),
        migration(12, "partitions", PackageResources._012_partitions_sql),
        migration(13, "redaction", PackageResources._013_redaction_sql),
        migration(14, "answered_slots", PackageResources._014_answered_slots_sql),
        migration(15, "operations", PackageResources._015_operations_sql),
        migration(16, "roles", PackageResources._016_roles_sql),
        migration(17, "claim_record_lookups", PackageResources._017_claim_record_lookups_sql),
    ]

    /// The file name a migration came from, e.g. `0002_validation.sql`.
    public static func fileName(of migration: Migration) -> String {
        let number = String(migration.version)
        return String(repeating: "0", count: max(0, 4 - number.count)) + number + "_" + migration.name + ".sql"
    }

    /// Applies migrations under advisory lock key "outbox-relay migrate".
    public static let migrator = Migrator(migrations: migrations, schema: "outbox", lockKey: 0x6F75_7462_6F78_6D67)

    /// What `outbox-relay migrate` does: applies the pending migrations, then
    /// grants the database roles that exist their rights (`outbox.grant_roles()`,
    /// `sql/0016_roles.sql`), so objects new in this release are covered and a
    /// DBA who created the roles by hand needs nothing more. Returns the
    /// migrations applied.
    @discardableResult
    public static func migrateAndGrant(on connection: Connection) throws -> [Migration] {
        let applied = try migrator.migrate(on: connection)
        try connection.query("SELECT outbox.grant_roles()")
        return applied
    }

    private static func migration(_ version: Int, _ name: String, _ bytes: [UInt8], formerly: Set<String> = []) -> Migration {
        Migration(version: version, name: name, sql: String(decoding: bytes, as: UTF8.self), formerChecksums: formerly)
    }
}
