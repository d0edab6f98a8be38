import OutboxSQL
import TestSupport
import Testing

/// Values travel as bind parameters, never spliced into the SQL text.
@Suite struct BindParameterTests {
    static let hostile = [
        "'); DROP TABLE x; --",
        "' OR '1'='1",
        "$2",
        "\\'; SELECT pg_sleep(10); --",
        "\"x\"; DROP TABLE x",
    ]

    @Test(arguments: hostile)
    func hostileTextIsStoredAsText(value: String) throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        try connection.execute("CREATE TABLE x (id int PRIMARY KEY, value text NOT NULL)")

        try connection.query("INSERT INTO x (id, value) VALUES ($1, $2)", [1, value])
        let insert = PreparedStatement(name: "insert_x", sql: "INSERT INTO x (id, value) VALUES ($1, $2)")
        try connection.query(insert, [2, value])

        #expect(try connection.query("SELECT $1::text", [value])[0].decode(String.self, at: 0) == value)
        let stored = try connection.query("SELECT value FROM x ORDER BY id").rows.map { try $0.decode(String.self, at: 0) }
        #expect(stored == [value, value])
        #expect(try database.scalar("SELECT to_regclass('x') IS NOT NULL", as: Bool.self), "table x is gone")
    }

    @Test func hostileTextInsideArraysAndJSONIsData() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        try connection.execute("CREATE TABLE x (id int PRIMARY KEY)")

        let array = try connection.query("SELECT $1::text[]", [Self.hostile])[0].decode([String].self, at: 0)
        #expect(array == Self.hostile)
        let json = try PostgresJSON(encoding: Self.hostile)
        let decoded = try connection.query("SELECT $1::jsonb", [json])[0].decode(PostgresJSON.self, at: 0)
        #expect(try decoded.decode(as: [String].self) == Self.hostile)
        #expect(try database.scalar("SELECT to_regclass('x') IS NOT NULL", as: Bool.self))
    }

    @Test func aParameterIsOneValueNotAnExpression() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        // Were the text spliced in, these would compare true or add up.
        #expect(try connection.query("SELECT $1::text = 'a'", ["a' OR 'b' = 'b"])[0].decode(Bool.self, at: 0) == false)
        let error = try #require(throws: PostgresError.self) { try connection.query("SELECT $1::int", ["1 + 1"]) }
        #expect(error.sqlState == "22P02")
    }
}
