import CLibPQ

/// The rows of one statement. Owns its `PGresult`; read it on the thread that
/// ran the statement and decode into plain values before handing them on.
public final class QueryResult {
    private let result: OpaquePointer
    /// Number of rows returned.
    public let count: Int
    /// Rows inserted, updated or deleted, for statements that report it.
    public let rowsAffected: Int

    init(_ result: OpaquePointer) {
        self.result = result
        count = Int(PQntuples(result))
        rowsAffected = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    deinit { PQclear(result) }

    public subscript(row: Int) -> PostgresRow { PostgresRow(result: self, row: Int32(row)) }

    /// All rows, in order.
    public var rows: [PostgresRow] { (0..<count).map { self[$0] } }

    /// Column index by name, or nil.
    public func column(named name: String) -> Int? {
        let index = PQfnumber(result, name)
        return index < 0 ? nil : Int(index)
    }

    func text(row: Int32, column: Int32) -> String? {
        guard PQgetisnull(result, row, column) == 0 else { return nil }
        return String(cString: PQgetvalue(result, row, column))
    }

    var columnCount: Int32 { PQnfields(result) }
}

/// One row of a `QueryResult`.
public struct PostgresRow {
    let result: QueryResult
    let row: Int32

    /// Decodes column `column` (0-based).
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at column: Int) throws -> T {
        guard column >= 0, column < Int(result.columnCount) else {
            throw PostgresError(code: .decoding, message: "column \(column) does not exist (the row has \(result.columnCount))")
        }
        do {
            return try T.decode(postgresText: result.text(row: row, column: Int32(column)))
        } catch var error as PostgresError {
            error.message += " (column \(column))"
            throw error
        }
    }

    /// Decodes the column called `name`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, named name: String) throws -> T {
        guard let column = result.column(named: name) else {
            throw PostgresError(code: .decoding, message: "column \"\(name)\" is not in the result")
        }
        return try decode(type, at: column)
    }
}
