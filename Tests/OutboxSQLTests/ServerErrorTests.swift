import OutboxSQL
import TestSupport
import Testing

/// A refused statement surfaces as a `PostgresError` carrying what the server said.
@Suite struct ServerErrorTests {
    @Test func errorCarriesSQLStateAndMessage() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let error = try #require(throws: PostgresError.self) { try connection.query("SELECT 1 / $1::int", [0]) }
        #expect(error.code == .server)
        #expect(error.sqlState == "22012")
        #expect(error.message == "division by zero")
        #expect(error.description.contains("division by zero"))
        #expect(error.description.contains("SQLSTATE 22012"))
        #expect(!error.isUniqueViolation)
    }

    @Test func syntaxErrorsHaveTheirOwnSQLState() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let viaParams = try #require(throws: PostgresError.self) { try connection.query("SELEC 1") }
        #expect(viaParams.sqlState == "42601")
        #expect(viaParams.message.contains("syntax error"))
        let viaExecute = try #require(throws: PostgresError.self) { try connection.execute("SELECT 1; SELEC 2") }
        #expect(viaExecute.sqlState == "42601")
    }

    @Test func detailAndHintArriveWhenTheServerSendsThem() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let raise = """
            DO $$ BEGIN
                RAISE EXCEPTION 'order % is broken', 42
                    USING ERRCODE = '22023', DETAIL = 'the total is negative', HINT = 'fix the order first';
            END $$
            """
        for run in [{ try connection.execute(raise) }, { _ = try connection.query(raise) }] {
            let error = try #require(throws: PostgresError.self) { try run() }
            #expect(error.code == .server)
            #expect(error.sqlState == "22023")
            #expect(error.message == "order 42 is broken")
            #expect(error.detail == "the total is negative")
            #expect(error.hint == "fix the order first")
            #expect(error.description == "order 42 is broken (SQLSTATE 22023); detail: the total is negative; hint: fix the order first")
        }
    }

    @Test func errorsWithoutDetailLeaveItNil() throws {
        let database = try TestDatabase(migrated: false)
        let error = try #require(throws: PostgresError.self) {
            try database.connect().execute("DO $$ BEGIN RAISE EXCEPTION 'plain'; END $$")
        }
        #expect(error.sqlState == "P0001")
        #expect(error.message == "plain")
        #expect(error.detail == nil)
        #expect(error.hint == nil)
    }

    @Test func uniqueViolationIsRecognised() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        try connection.execute("CREATE TABLE keys (k text PRIMARY KEY)")
        try connection.query("INSERT INTO keys (k) VALUES ($1)", ["order-42"])
        let error = try #require(throws: PostgresError.self) {
            try connection.query("INSERT INTO keys (k) VALUES ($1)", ["order-42"])
        }
        #expect(error.isUniqueViolation)
        #expect(error.sqlState == "23505")
        #expect(error.message.contains(#"unique constraint "keys_pkey""#))
        #expect(error.detail == "Key (k)=(order-42) already exists.")
    }

    @Test func preparedStatementsReportErrorsTheSameWay() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        try connection.execute("CREATE TABLE keys (k int PRIMARY KEY)")
        let insert = PreparedStatement(name: "insert_key", sql: "INSERT INTO keys (k) VALUES ($1)")
        try connection.query(insert, [1])
        let duplicate = try #require(throws: PostgresError.self) { try connection.query(insert, [1]) }
        #expect(duplicate.isUniqueViolation)
        let badPrepare = try #require(throws: PostgresError.self) {
            try connection.query(PreparedStatement(name: "broken", sql: "SELECT FROM nowhere_at_all"), [])
        }
        #expect(badPrepare.sqlState == "42P01")
        #expect(badPrepare.message.contains("nowhere_at_all"))
        // The statement prepared before still works afterwards.
        try connection.query(insert, [2])
        #expect(try database.scalar("SELECT count(*) FROM keys", as: Int.self) == 2)
    }

    @Test func theConnectionStaysUsableAfterAnError() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        #expect(throws: PostgresError.self) { try connection.query("SELECT * FROM no_such_table") }
        #expect(try connection.query("SELECT $1::int + 1", [41])[0].decode(Int.self, at: 0) == 42)
    }
}
