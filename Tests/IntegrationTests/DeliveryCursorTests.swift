import Testing

@testable import OutboxAdmin

/// The opaque page cursor of GET /api/v1/deliveries: what it encodes comes back,
/// and anything the API did not hand out is refused as a bad cursor.
@Suite struct DeliveryCursorTests {
    @Test(arguments: [1, 42, 1_000_000, Int64.max])
    func aCursorDecodesToTheIdItEncodes(_ id: Int64) throws {
        let cursor = DeliveryCursor.encode(id)
        #expect(!cursor.contains("=") && !cursor.contains("+") && !cursor.contains("/"), "base64url without padding: \(cursor)")
        #expect(try DeliveryCursor.decode(cursor) == id)
    }

    @Test(arguments: ["", "abc", "ZDo", "ZDow", "ZDotNQ", "eDoxMg", "ZDoxMng", "!!!!"])
    func anythingElseIsABadCursor(_ text: String) {
        // "ZDo" is "d:", "ZDow" "d:0", "ZDotNQ" "d:-5", "eDoxMg" "x:12", "ZDoxMng" "d:12x".
        let error = #expect(throws: APIError.self) { try DeliveryCursor.decode(text) }
        #expect(error?.code == "bad_cursor")
    }
}
