import Foundation
import OutboxSQL
import TestSupport
import Testing

/// Every supported Swift type goes to the server as a bind parameter and comes back unchanged.
@Suite struct ValueRoundTripTests {
    @Test func everySupportedTypeRoundTrips() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let date = Date(timeIntervalSince1970: 1_764_094_007.123456)
        let row = try connection.query(
            "SELECT $1::bigint, $2::int, $3::text, $4::bool, $5::timestamptz, $6::jsonb, $7::text[], $8::float8, $9::bigint",
            [Int64.max, Int32.min, "text value", true, date, PostgresJSON(text: #"{"b":1,"a":[true,null,"x"]}"#),
             ["a", "b c"], 2.5, Int.min])[0]

        #expect(try row.decode(Int64.self, at: 0) == Int64.max)
        #expect(try row.decode(Int32.self, at: 1) == Int32.min)
        #expect(try row.decode(String.self, at: 2) == "text value")
        #expect(try row.decode(Bool.self, at: 3) == true)
        let decodedDate = try row.decode(Date.self, at: 4)
        #expect(abs(decodedDate.timeIntervalSince(date)) < 0.000_001)
        // jsonb comes back in the server's normal form: keys sorted, spaces after separators.
        #expect(try row.decode(PostgresJSON.self, at: 5).text == #"{"a": [true, null, "x"], "b": 1}"#)
        #expect(try row.decode([String].self, at: 6) == ["a", "b c"])
        #expect(try row.decode(Double.self, at: 7) == 2.5)
        #expect(try row.decode(Int.self, at: 8) == Int.min)
    }

    @Test func nullRoundTripsForEveryType() throws {
        let database = try TestDatabase(migrated: false)
        let row = try database.connect().query(
            "SELECT $1::bigint, $2::int, $3::text, $4::bool, $5::timestamptz, $6::jsonb, $7::text[], $8::float8, $9::bigint",
            [Int64?.none, Int32?.none, String?.none, Bool?.none, Date?.none, PostgresJSON?.none,
             [String]?.none, Double?.none, Int?.none])[0]

        #expect(try row.decode(Int64?.self, at: 0) == nil)
        #expect(try row.decode(Int32?.self, at: 1) == nil)
        #expect(try row.decode(String?.self, at: 2) == nil)
        #expect(try row.decode(Bool?.self, at: 3) == nil)
        #expect(try row.decode(Date?.self, at: 4) == nil)
        #expect(try row.decode(PostgresJSON?.self, at: 5) == nil)
        #expect(try row.decode([String]?.self, at: 6) == nil)
        #expect(try row.decode(Double?.self, at: 7) == nil)
        #expect(try row.decode(Int?.self, at: 8) == nil)
        // A NULL read as a non-optional type is a decoding error, not a zero or an empty string.
        let error = #expect(throws: PostgresError.self) { try row.decode(String.self, at: 2) }
        #expect(error?.code == .decoding)
    }

    @Test func textArraysKeepQuotesBackslashesNullsAndUnicode() throws {
        let database = try TestDatabase(migrated: false)
        let items: [String?] = ["plain", "with \"quotes\"", #"back\slash\"#, nil, "NULL", "", "ünïcødé ✓ 🎉", "a,b {c}"]
        let row = try database.connect().query(
            "SELECT $1::text[], cardinality($1::text[]), array_position($1::text[], NULL)", [items])[0]
        #expect(try row.decode([String?].self, at: 0) == items)
        #expect(try row.decode(Int.self, at: 1) == items.count)
        #expect(try row.decode(Int.self, at: 2) == 4)
    }

    @Test func integersKeepTheirExtremes() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        for value in [Int64.min, -1, 0, 1, Int64.max] {
            #expect(try connection.query("SELECT $1::bigint", [value])[0].decode(Int64.self, at: 0) == value)
        }
        for value in [Int32.min, 0, Int32.max] {
            #expect(try connection.query("SELECT $1::int", [value])[0].decode(Int32.self, at: 0) == value)
        }
    }

    @Test(arguments: [0.0, -0.0, 0.1, -1.5, Double.pi, 1e300, -1e-300, Double.greatestFiniteMagnitude,
                      Double.leastNonzeroMagnitude, Double.infinity, -Double.infinity])
    func doublesRoundTripExactly(value: Double) throws {
        let database = try TestDatabase(migrated: false)
        let decoded = try database.connect().query("SELECT $1::float8", [value])[0].decode(Double.self, at: 0)
        #expect(decoded == value)
        #expect(decoded.sign == value.sign)
    }

    @Test func notANumberRoundTrips() throws {
        let database = try TestDatabase(migrated: false)
        let row = try database.connect().query("SELECT $1::float8, $1::float8 = 'NaN'::float8", [Double.nan])[0]
        #expect(try row.decode(Double.self, at: 0).isNaN)
        #expect(try row.decode(Bool.self, at: 1))
    }

    @Test func timestampsKeepMicrosecondsAndMeanTheSameInstantOnTheServer() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let cases: [(Date, String)] = [
            (Date(timeIntervalSince1970: 0), "1970-01-01 00:00:00+00"),
            (Date(timeIntervalSince1970: -1.5), "1969-12-31 23:59:58.5+00"),
            (Date(timeIntervalSince1970: 1_709_210_096.789012), "2024-02-29 12:34:56.789012+00"),
            (Date(timeIntervalSince1970: 253_402_300_799), "9999-12-31 23:59:59+00"),
            (Date(timeIntervalSince1970: -62_135_596_800), "0001-01-01 00:00:00+00"),
        ]
        for (date, serverText) in cases {
            let row = try connection.query("SELECT $1::timestamptz, $1::timestamptz = $2::timestamptz", [date, serverText])[0]
            #expect(try row.decode(Bool.self, at: 1), "the server read \(date) as another instant than \(serverText)")
            let decoded = try row.decode(Date.self, at: 0)
            #expect(abs(decoded.timeIntervalSince(date)) < 0.000_002, "\(date) came back as \(decoded)")
        }
        // A timestamp written with another offset is the same instant.
        let offset = try connection.query("SELECT '2024-02-29 18:04:56.789012+05:30'::timestamptz")[0].decode(Date.self, at: 0)
        #expect(abs(offset.timeIntervalSince1970 - 1_709_210_096.789012) < 0.000_002)
    }

    @Test func jsonRoundTripsThroughCodable() throws {
        struct Order: Codable, Equatable {
            var id: Int
            var note: String
            var tags: [String]
        }
        let database = try TestDatabase(migrated: false)
        let order = Order(id: 42, note: "café \"quoted\" \\ 🎉", tags: ["a", "b"])
        let json = try database.connect().query("SELECT $1::jsonb", [PostgresJSON(encoding: order)])[0]
            .decode(PostgresJSON.self, at: 0)
        #expect(try json.decode(as: Order.self) == order)
    }

    @Test func textArraysKeepAwkwardElements() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        let elements = ["plain", "with space", "comma,inside", "quote\"inside", "back\\slash", "{braces}",
                        "NULL", "", " padded ", "new\nline", "emoji 🎉", "漢字"]
        let row = try connection.query("SELECT $1::text[], cardinality($1::text[])", [elements])[0]
        #expect(try row.decode([String].self, at: 0) == elements)
        #expect(try row.decode(Int.self, at: 1) == elements.count)

        let withNulls: [String?] = ["a", nil, "NULL", ""]
        #expect(try connection.query("SELECT $1::text[]", [withNulls])[0].decode([String?].self, at: 0) == withNulls)
        let built = try connection.query("SELECT ARRAY['a', NULL, 'NULL', '']::text[]")[0].decode([String?].self, at: 0)
        #expect(built == withNulls)
        #expect(try connection.query("SELECT $1::text[]", [[String]()])[0].decode([String].self, at: 0) == [])
        #expect(try connection.query("SELECT $1::bigint[]", [[Int64(1), -2, Int64.max]])[0].decode([Int64].self, at: 0)
            == [1, -2, Int64.max])
    }

    @Test func booleansRoundTrip() throws {
        let database = try TestDatabase(migrated: false)
        let row = try database.connect().query("SELECT $1::bool, $2::bool, NOT $1::bool", [true, false])[0]
        #expect(try row.decode(Bool.self, at: 0) == true)
        #expect(try row.decode(Bool.self, at: 1) == false)
        #expect(try row.decode(Bool.self, at: 2) == false)
    }
}
