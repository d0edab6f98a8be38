import Foundation
import OutboxSQL
import TestSupport
import Testing

/// Text reaches the server byte for byte: any Unicode, not normalised, and large values whole.
@Suite struct TextEncodingTests {
    static let samples = [
        "emoji 🎉 and a family 👩‍👩‍👧",
        "CJK 漢字 かな カナ 한국어",
        "combining e\u{301} and precomposed \u{E9}",
        "right-to-left שלום مرحبا",
        "controls \t tab \r\n line",
        "supplementary plane 𝄞 𐍈",
    ]

    @Test(arguments: samples)
    func unicodeTextRoundTripsUnchanged(text: String) throws {
        let database = try TestDatabase(migrated: false)
        let row = try database.connect().query("SELECT $1::text, octet_length($1::text), length($1::text)", [text])[0]
        let decoded = try row.decode(String.self, at: 0)
        // Swift's == treats canonically equivalent strings as equal; compare scalars so
        // that a normalisation (e + U+0301 → é) would show.
        #expect(Array(decoded.unicodeScalars) == Array(text.unicodeScalars))
        #expect(try row.decode(Int.self, at: 1) == text.utf8.count)
        #expect(try row.decode(Int.self, at: 2) == text.unicodeScalars.count)
    }

    @Test(arguments: samples)
    func unicodeInsideJSONRoundTripsUnchanged(text: String) throws {
        let database = try TestDatabase(migrated: false)
        let json = try database.connect().query("SELECT $1::jsonb", [PostgresJSON(encoding: ["text": text])])[0]
            .decode(PostgresJSON.self, at: 0)
        let decoded = try json.decode(as: [String: String].self)["text"]
        #expect(decoded.map { Array($0.unicodeScalars) } == Array(text.unicodeScalars))
    }

    @Test func unicodeInArraysRoundTrips() throws {
        let database = try TestDatabase(migrated: false)
        let decoded = try database.connect().query("SELECT $1::text[]", [Self.samples])[0].decode([String].self, at: 0)
        #expect(decoded.map { Array($0.unicodeScalars) } == Self.samples.map { Array($0.unicodeScalars) })
    }

    @Test func aOneMebibyteTextRoundTrips() throws {
        let database = try TestDatabase(migrated: false)
        // 1 MiB of mixed one-, two-, three- and four-byte characters.
        let unit = "a€é漢🎉"  // 1 + 3 + 2 + 3 + 4 = 13 bytes
        var text = String(repeating: unit, count: (1 << 20) / unit.utf8.count)
        text += String(repeating: "x", count: (1 << 20) - text.utf8.count)
        #expect(text.utf8.count == 1 << 20)

        let row = try database.connect().query("SELECT $1::text, octet_length($1::text)", [text])[0]
        #expect(try row.decode(String.self, at: 0) == text)
        #expect(try row.decode(Int.self, at: 1) == 1 << 20)
    }

    @Test func aOneMebibyteJSONPayloadRoundTripsThroughATable() throws {
        let database = try TestDatabase(migrated: false)
        let connection = try database.connect()
        try connection.execute("CREATE TABLE payloads (id int PRIMARY KEY, body jsonb NOT NULL)")
        // A JSON string is its text plus two quotes: exactly 1 MiB of JSON text.
        let body = PostgresJSON(text: "\"" + String(repeating: "漢", count: ((1 << 20) - 2) / 3)
            + String(repeating: "y", count: ((1 << 20) - 2) % 3) + "\"")
        #expect(body.text.utf8.count == 1 << 20)

        try connection.query("INSERT INTO payloads (id, body) VALUES ($1, $2)", [1, body])
        let row = try connection.query("SELECT body, octet_length(body::text) FROM payloads WHERE id = $1", [1])[0]
        #expect(try row.decode(PostgresJSON.self, at: 0) == body)
        #expect(try row.decode(Int.self, at: 1) == 1 << 20)
    }
}
