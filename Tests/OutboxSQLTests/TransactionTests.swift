import OutboxSQL
import TestSupport
import Testing

/// `withTransaction` commits when its body returns and rolls back when it throws.
@Suite struct TransactionTests {
    struct Abandoned: Error, Equatable {}

    private static func ledger(in database: TestDatabase) throws -> Connection {
        let connection = try database.connect()
        try connection.execute("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)")
        return connection
    }

    @Test func commitsWhenTheBodyReturns() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try Self.ledger(in: database)
        let observer = try database.connect()

        let returned = try connection.withTransaction { transaction -> Int in
            try transaction.query("INSERT INTO ledger (id, note) VALUES ($1, $2)", [1, "first"])
            try transaction.query("INSERT INTO ledger (id, note) VALUES ($1, $2)", [2, "second"])
            // Not visible to others before the commit: it really is one transaction.
            #expect(try observer.query("SELECT count(*) FROM ledger")[0].decode(Int.self, at: 0) == 0)
            return 7
        }

        #expect(returned == 7)
        #expect(try observer.query("SELECT count(*) FROM ledger")[0].decode(Int.self, at: 0) == 2)
    }

    @Test func rollsBackWhenTheBodyThrows() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try Self.ledger(in: database)

        #expect(throws: Abandoned()) {
            try connection.withTransaction { transaction in
                try transaction.query("INSERT INTO ledger (id, note) VALUES ($1, $2)", [1, "never"])
                throw Abandoned()
            }
        }

        #expect(try database.scalar("SELECT count(*) FROM ledger", as: Int.self) == 0)
        // The connection is out of the transaction and usable.
        try connection.query("INSERT INTO ledger (id, note) VALUES ($1, $2)", [1, "after"])
        #expect(try database.scalar("SELECT note FROM ledger WHERE id = 1", as: String.self) == "after")
    }

    @Test func rollsBackWhenAStatementInTheBodyFails() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try Self.ledger(in: database)

        let error = try #require(throws: PostgresError.self) {
            try connection.withTransaction { transaction in
                try transaction.query("INSERT INTO ledger (id, note) VALUES ($1, $2)", [1, "first"])
                try transaction.query("INSERT INTO ledger (id, note) VALUES ($1, $2)", [1, "duplicate"])
            }
        }

        #expect(error.isUniqueViolation)
        #expect(try database.scalar("SELECT count(*) FROM ledger", as: Int.self) == 0)
        #expect(try connection.query("SELECT count(*) FROM ledger")[0].decode(Int.self, at: 0) == 0)
    }

    @Test func databaseClientTransactionsCommitAndRollBack() async throws {
        let database = try TestDatabase(migrated: false)
        _ = try Self.ledger(in: database)
        let client = DatabaseClient(target: database.target, name: "transaction-test")
        defer { client.close() }

        try await client.transaction { _ = try $0.query("INSERT INTO ledger (id, note) VALUES ($1, $2)", [1, "kept"]) }
        await #expect(throws: Abandoned()) {
            try await client.transaction { transaction in
                try transaction.query("INSERT INTO ledger (id, note) VALUES ($1, $2)", [2, "dropped"])
                throw Abandoned()
            }
        }

        let notes = try await client.run { connection in
            try connection.query("SELECT note FROM ledger ORDER BY id").rows.map { try $0.decode(String.self, at: 0) }
        }
        #expect(notes == ["kept"])
    }
}
