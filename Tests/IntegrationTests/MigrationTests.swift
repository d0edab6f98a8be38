import Foundation
import OutboxRelay
import OutboxSQL
import TestSupport
import Testing

/// The schema's migrations: up from empty, repeatable, safe to run from several
/// replicas at once, strict about history, and the same as a DBA's `psql -f`.
@Suite(.timeLimit(.minutes(5)))
struct MigrationTests {
    static let sqlDirectory = RelayBinary.packageRoot.appendingPathComponent("sql")

    /// The `sql/*.sql` files, in the order they apply.
    static func sqlFiles() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: sqlDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test func migrationsMatchTheSQLFolder() throws {
        let files = try Self.sqlFiles()
        #expect(files.count == OutboxSchema.migrations.count)
        #expect(files.map(\.lastPathComponent) == OutboxSchema.migrations.map(OutboxSchema.fileName(of:)))
        for (file, migration) in zip(files, OutboxSchema.migrations) {
            #expect(try Data(contentsOf: file) == Data(migration.sql.utf8), "\(file.lastPathComponent) differs from the embedded copy")
        }
        #expect(OutboxSchema.migrations.map(\.version) == Array(1...OutboxSchema.migrations.count))
    }

    @Test func upFromEmptyRecordsEveryMigrationWithItsChecksum() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()

        let applied = try OutboxSchema.migrator.migrate(on: connection)

        #expect(applied == OutboxSchema.migrations)
        let recorded = try connection.query("SELECT version, name, checksum FROM outbox.schema_migrations ORDER BY version").rows
        #expect(try recorded.map { try $0.decode(Int.self, at: 0) } == OutboxSchema.migrations.map(\.version))
        #expect(try recorded.map { try $0.decode(String.self, at: 1) } == OutboxSchema.migrations.map(\.name))
        for (row, file) in zip(recorded, try Self.sqlFiles()) {
            // SHA-256 of the file's bytes as they are on disk.
            let hex = try Data(contentsOf: file).map { String(format: "%02x", $0) }.joined()
            let expected = try connection.query("SELECT encode(sha256(decode($1, 'hex')), 'hex')", [hex])[0].decode(String.self, at: 0)
            #expect(try row.decode(String.self, at: 2) == expected, "checksum of \(file.lastPathComponent)")
        }
        try SchemaContract.expectPresent(on: connection)
        #expect(try OutboxSchema.migrator.status(on: connection) == .current)
    }

    @Test func theSpecExamplesRunAsWritten() throws {
        let database = try TestDatabase()
        let connection = try database.connect()
        let secret = try connection.query("SELECT outbox.subscribe('orders', 'https://example.com/hooks', ARRAY['order.*'])")[0]
            .decode(String.self, at: 0)
        #expect(secret.hasPrefix("whsec_"))
        try connection.execute("INSERT INTO outbox.events (event_type, payload) VALUES ('order.created', '{\"id\": 42}')")
        let eventID = try connection.query("SELECT outbox.publish('order.created', '{\"id\": 42}'::jsonb)")[0].decode(String.self, at: 0)
        try connection.query("SELECT outbox.publish('order.paid', '{\"id\": 42}', ordering_key => 'order-42')")
        #expect(!eventID.isEmpty)
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'pending'", as: Int.self) == 3)
        #expect(try database.scalar("SELECT pending FROM outbox.subscription_health WHERE subscription = 'orders'", as: Int.self) == 3)
    }

    /// CREATE OR REPLACE FUNCTION resets a function's settings, so a migration that redefines a
    /// hot-path function must restate them (0017 once dropped record_results' and the recorder
    /// scanned the whole queue: 26 buffer touches per delivery instead of 12).
    @Test func theHotPathKeepsItsSettingsAfterEveryMigration() throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        let expected = [
            "claim_deliveries": ["enable_seqscan=off", "jit=off"],
            "record_results": ["enable_seqscan=off"],
            "renew_leases": ["enable_seqscan=off"],
            "release_deliveries": ["enable_seqscan=off"],
            "read_new_events": ["enable_sort=off", "plan_cache_mode=force_generic_plan"],
        ]
        for (function, settings) in expected {
            let rows = try sql.query(
                "SELECT coalesce(proconfig, '{}') FROM pg_proc WHERE pronamespace = 'outbox'::regnamespace AND proname = $1",
                [function]
            ).rows.map { try $0.decode([String].self, at: 0) }
            #expect(rows.count == 1, "\(function): \(rows.count) definitions")
            for config in rows {
                #expect(Set(settings).isSubset(of: Set(config)), "\(function) runs with \(config), wants \(settings)")
            }
        }
    }

    @Test func aSecondMigrateIsANoOp() async throws {
        let database = try TestDatabase()
        let before = try Self.bookkeeping(of: database)

        #expect(try OutboxSchema.migrator.migrate(on: database.connect()).isEmpty)
        let run = try await RelayBinary.run(["migrate"], databaseURL: database.conninfo)

        #expect(run.status == 0, "\(run.output)")
        #expect(try Self.bookkeeping(of: database) == before)
    }

    @Test func fourReplicasMigratingAtOnceLeaveOneSchema() async throws {
        let database = try TestDatabase(migrated: false)

        let runs = try await withThrowingTaskGroup(of: ToolRun.self) { group in
            for _ in 0..<4 {
                group.addTask { try await RelayBinary.run(["migrate"], databaseURL: database.conninfo) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }

        for run in runs {
            #expect(run.status == 0, "\(run.output)")
        }
        let connection = try database.connect()
        let counts = try connection.query("SELECT count(*), count(DISTINCT version) FROM outbox.schema_migrations")[0]
        #expect(try counts.decode(Int.self, at: 0) == OutboxSchema.migrations.count)
        #expect(try counts.decode(Int.self, at: 1) == OutboxSchema.migrations.count)
        try SchemaContract.expectPresent(on: connection)
    }

    @Test func aMigrationUnknownToThisBinaryIsRefused() async throws {
        let database = try TestDatabase()
        try database.connect().query(
            "INSERT INTO outbox.schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'abc')")

        let run = try await RelayBinary.run(["migrate"], databaseURL: database.conninfo)

        #expect(run.status != 0)
        #expect(run.output.contains("9999"), "\(run.output)")
        #expect(run.output.contains("does not know"), "\(run.output)")
        let error = #expect(throws: PostgresError.self) { try OutboxSchema.migrator.migrate(on: database.connect()) }
        #expect(error?.code == .migration)
    }

    @Test func aChangedChecksumIsRefused() async throws {
        let database = try TestDatabase()
        try database.connect().query("UPDATE outbox.schema_migrations SET checksum = 'deadbeef' WHERE version = 2")

        let run = try await RelayBinary.run(["migrate"], databaseURL: database.conninfo)

        #expect(run.status != 0)
        #expect(run.output.contains("migration 2 (validation) changed after it was applied"), "\(run.output)")
        let error = #expect(throws: PostgresError.self) { try OutboxSchema.migrator.status(on: database.connect()) }
        #expect(error?.code == .migration)
    }

    @Test func anEarlierTextOfAnEditedMigrationIsStillAccepted() throws {
        let database = try TestDatabase()
        let former = try #require(OutboxSchema.migrations.first { $0.version == 1 }?.formerChecksums.first)
        try database.connect().query("UPDATE outbox.schema_migrations SET checksum = $1 WHERE version = 1", [former])

        #expect(try OutboxSchema.migrator.status(on: database.connect()) == .current)
        #expect(try OutboxSchema.migrator.migrate(on: database.connect()).isEmpty)
    }

    @Test func psqlAndMigrateProduceTheSameSchema() async throws {
        // Both paths grant the group roles that exist (sql/0016_roles.sql). They are
        // cluster-wide: made now, no other test creates them between the two.
        try DatabaseLogin.grantGroupRoles(in: TestDatabase())
        let byHand = try TestDatabase(migrated: false)
        let byRelay = try TestDatabase(migrated: false)

        try await PostgresTools.applyWithPsql(try Self.sqlFiles(), to: byHand)
        let run = try await RelayBinary.run(["migrate"], databaseURL: byRelay.conninfo)
        #expect(run.status == 0, "\(run.output)")

        let handDump = try await PostgresTools.schemaDump(of: byHand)
        let relayDump = try await PostgresTools.schemaDump(of: byRelay)
        #expect(handDump.contains("CREATE TABLE outbox.events ("))
        PostgresTools.expectSameDump(relayDump, handDump)
    }

    @Test func sqlFilesApplyTwiceWithPsqlAndThenMigrateAdoptsThem() async throws {
        // The group roles exist before the first run, so both runs grant them.
        try DatabaseLogin.grantGroupRoles(in: TestDatabase())
        let database = try TestDatabase(migrated: false)
        let files = try Self.sqlFiles()
        try await PostgresTools.applyWithPsql(files, to: database)
        let once = try await PostgresTools.schemaDump(of: database)

        try await PostgresTools.applyWithPsql(files, to: database)
        PostgresTools.expectSameDump(try await PostgresTools.schemaDump(of: database), once)

        // A database a DBA set up by hand can be handed to the relay.
        let run = try await RelayBinary.run(["migrate"], databaseURL: database.conninfo)
        #expect(run.status == 0, "\(run.output)")
        #expect(try database.scalar("SELECT count(*) FROM outbox.schema_migrations", as: Int.self) == files.count)
    }

    /// What outbox.schema_migrations holds, applied_at included.
    static func bookkeeping(of database: TestDatabase) throws -> [String] {
        try database.connect().query("SELECT version, checksum, applied_at::text FROM outbox.schema_migrations ORDER BY version")
            .rows.map { "\(try $0.decode(Int.self, at: 0)) \(try $0.decode(String.self, at: 1)) \(try $0.decode(String.self, at: 2))" }
    }
}

/// The objects SPEC §3 names, with the columns it names.
enum SchemaContract {
    static let tables: [String: [String]] = [
        "events": ["id", "event_id", "event_type", "payload", "ordering_key", "headers", "created_at"],
        "subscriptions": ["id", "name", "url", "event_types", "enabled", "disabled_reason", "ordered", "headers",
                          "timeout", "retry_schedule", "max_in_flight", "rate_limit"],
        "deliveries": ["id", "event_id", "subscription_id", "status", "attempts", "next_attempt_at", "last_status_code",
                       "last_error", "created_at", "completed_at"],
        "attempts": ["delivery_id", "attempt", "started_at", "duration_ms", "status_code", "error", "response_excerpt"],
    ]
    static let views: [String: [String]] = [
        "dead_letters": [],
        "subscription_health": ["subscription", "enabled", "pending", "delivering", "succeeded", "dead",
                                "oldest_pending_age", "last_success_at", "consecutive_failures", "circuit_state"],
    ]
    static let functions = [
        "outbox.publish(text, jsonb, text, jsonb, text)",
        "outbox.replay(bigint)",
        "outbox.subscribe(text, text, text[], text, boolean)",
    ]

    /// The kind of each relation (pg_class.relkind): partitioned tables and views besides plain ones.
    static let kinds = ["events": "p", "attempts": "p", "subscriptions": "r", "deliveries": "v"]

    static func expectPresent(on connection: Connection) throws {
        for (relation, kind) in tables.keys.sorted().map({ ($0, kinds[$0] ?? "r") }) + views.keys.sorted().map({ ($0, "v") }) {
            let found = try connection.query(
                "SELECT c.relkind::text FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = 'outbox' AND c.relname = $1",
                [relation])
            #expect(try found.rows.map { try $0.decode(String.self, at: 0) } == [kind], "outbox.\(relation)")
            let columns = try Set(connection.query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'outbox' AND table_name = $1",
                [relation]).rows.map { try $0.decode(String.self, at: 0) })
            let missing = (tables[relation] ?? views[relation] ?? []).filter { !columns.contains($0) }
            #expect(missing.isEmpty, "outbox.\(relation) lacks \(missing)")
        }
        for function in functions {
            #expect(try connection.query("SELECT to_regprocedure($1) IS NOT NULL", [function])[0].decode(Bool.self, at: 0), "\(function)")
        }
    }
}

/// psql and pg_dump, as a DBA would run them.
enum PostgresTools {
    /// `name` from PG_BINDIR, PostgreSQL 15's bin directory, or PATH.
    static func url(_ name: String) throws -> URL {
        let environment = ProcessInfo.processInfo.environment
        let directories = [environment["PG_BINDIR"], "/usr/lib/postgresql/15/bin"].compactMap { $0 }
            + (environment["PATH"] ?? "").split(separator: ":").map(String.init)
        let candidates = directories.map { URL(fileURLWithPath: $0).appendingPathComponent(name) }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw ProgramError(description: "\(name) not found in PG_BINDIR, /usr/lib/postgresql/15/bin or PATH: run scripts/install-deps")
        }
        return found
    }

    /// Applies `files` in order with `psql -v ON_ERROR_STOP=1 -f …`, in one psql run.
    static func applyWithPsql(_ files: [URL], to database: TestDatabase) async throws {
        var arguments = ["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--dbname=\(database.conninfo)"]
        arguments += files.map { "--file=\($0.path)" }
        let run = try await ToolRun.run(
            [try url("psql").path] + arguments, environment: ["PGOPTIONS": "-c client_min_messages=warning"], timeout: .seconds(120))
        guard run.status == 0 else {
            throw ProgramError(description: "psql exited \(run.status):\n\(run.output)")
        }
    }

    /// `pg_dump --schema-only --schema=outbox`, without outbox.schema_migrations (only
    /// the migrate path has it) and without what differs from one database to another.
    static func schemaDump(of database: TestDatabase) async throws -> [String] {
        let run = try await ToolRun.run(
            [try url("pg_dump").path, "--schema-only", "--schema=outbox", "--dbname=\(database.conninfo)"], timeout: .seconds(120))
        guard run.status == 0 else {
            throw ProgramError(description: "pg_dump exited \(run.status):\n\(run.output)")
        }
        // pg_dump writes one block per object, each opening with "--" and "-- Name: …".
        let lines = run.output.components(separatedBy: "\n")
        var blocks: [[String]] = [[]]
        for (index, line) in lines.enumerated() {
            if line == "--", index + 1 < lines.count, lines[index + 1].hasPrefix("-- Name: ") {
                blocks.append([])
            }
            blocks[blocks.count - 1].append(line)
        }
        return blocks
            .filter { block in !block.contains { $0.contains("schema_migrations") } }
            .joined()
            // \restrict and \unrestrict carry a random key per dump.
            .filter { !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
            .map { $0.replacingOccurrences(of: database.name, with: "<database>") }
    }

    /// Expects two dumps to be equal, showing the first differing lines when not.
    static func expectSameDump(_ actual: [String], _ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let difference = actual.difference(from: expected)
        let shown = difference.prefix(20).map { change -> String in
            switch change {
            case .insert(let offset, let line, _): "+ \(offset): \(line)"
            case .remove(let offset, let line, _): "- \(offset): \(line)"
            }
        }
        #expect(difference.isEmpty, "schema dumps differ:\n\(shown.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }
}
