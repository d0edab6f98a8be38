/// One numbered schema change: the text of one `sql/NNNN_name.sql` file.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String
    /// SHA-256 (hex) of earlier texts of this file that a database may have
    /// recorded: edits that leave what the file does to such a database unchanged.
    public let formerChecksums: Set<String>

    public init(version: Int, name: String, sql: String, formerChecksums: Set<String> = []) {
        self.version = version
        self.name = name
        self.sql = sql
        self.formerChecksums = formerChecksums
    }
}

/// How a database's recorded migrations compare with this binary's.
public enum MigrationStatus: Sendable, Equatable {
    case current
    /// Versions this binary would apply.
    case pending([Int])
}

/// Applies migrations in order under a PostgreSQL advisory lock, so replicas that
/// start together apply each one once, and records each with its SHA-256 in
/// `<schema>.schema_migrations`. Refuses a database whose record names a
/// migration this binary does not know, or one whose text changed.
public struct Migrator: Sendable {
    public let migrations: [Migration]
    public let schema: String
    /// The advisory lock key held while migrating.
    public let lockKey: Int64

    public init(migrations: [Migration], schema: String, lockKey: Int64) {
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.schema = schema
        self.lockKey = lockKey
    }

    private var table: String { "\(schema).schema_migrations" }

    /// Applies what is pending; returns the migrations it applied (empty when current).
    @discardableResult
    public func migrate(on connection: Connection) throws -> [Migration] {
        try connection.query("SELECT pg_advisory_lock($1)", [lockKey])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [lockKey]) }
        try connection.execute("""
            CREATE SCHEMA IF NOT EXISTS \(schema);
            CREATE TABLE IF NOT EXISTS \(table) (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let pending = try pendingMigrations(on: connection)
        for migration in pending {
            try connection.withTransaction { connection in
                try connection.execute(migration.sql)
                try connection.query(
                    "INSERT INTO \(table) (version, name, checksum) VALUES ($1, $2, encode(sha256(convert_to($3, 'UTF8')), 'hex'))",
                    [migration.version, migration.name, migration.sql])
            }
        }
        return pending
    }

    /// Compares the database with this binary without changing anything.
    public func status(on connection: Connection) throws -> MigrationStatus {
        let exists = try connection.query("SELECT to_regclass($1) IS NOT NULL", [table])[0].decode(Bool.self, at: 0)
        guard exists else { return .pending(migrations.map(\.version)) }
        let pending = try pendingMigrations(on: connection)
        return pending.isEmpty ? .current : .pending(pending.map(\.version))
    }

    /// The known migrations not yet recorded, after checking the record.
    private func pendingMigrations(on connection: Connection) throws -> [Migration] {
        let recorded = try connection.query("SELECT version, name, checksum FROM \(table) ORDER BY version")
        var applied: Set<Int> = []
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for row in recorded.rows {
            let version = try row.decode(Int.self, at: 0)
            let name = try row.decode(String.self, at: 1)
            let checksum = try row.decode(String.self, at: 2)
            guard let migration = known[version] else {
                throw PostgresError(
                    code: .migration,
                    message: "the database has migration \(version) (\(name)) that this outbox-relay does not know: it was migrated by a newer release; run that release or newer")
            }
            let expected = try connection.query(
                "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')", [migration.sql])[0].decode(String.self, at: 0)
            guard expected == checksum || migration.formerChecksums.contains(checksum) else {
                throw PostgresError(
                    code: .migration,
                    message: "migration \(version) (\(name)) changed after it was applied (checksum \(checksum.prefix(12))… in the database, \(expected.prefix(12))… in this binary): restore the original file and put the change in a new migration")
            }
            applied.insert(version)
        }
        return migrations.filter { !applied.contains($0.version) }
    }
}
