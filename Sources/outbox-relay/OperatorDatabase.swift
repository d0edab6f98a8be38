import OutboxOperations
import OutboxSQL

/// A problem with what the operator asked for, found once the database was
/// consulted (an unknown name, a duplicate): printed as one `Error: …` line, exit 1.
struct OperatorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    static func noSubscription(_ name: String) -> OperatorError {
        OperatorError("\(OperationError.noSubscription(name)): `outbox-relay subscription list` shows them")
    }
}

extension GlobalOptions {
    /// Sets up logging (checking --log-level/--log-format), connects, and runs
    /// `body`. A database without the outbox schema gets a hint to migrate.
    func withDatabase<T>(_ body: (Connection) throws -> T) throws -> T {
        _ = try bootstrapLogging()
        let connection = try Connection(databaseTarget())
        do {
            return try body(connection)
        } catch let error as OperationError {
            throw OperatorError(error.description)
        } catch let error as PostgresError where ["3F000", "42P01", "42883"].contains(error.sqlState ?? "") {
            // invalid_schema_name, undefined_table, undefined_function
            throw OperatorError("\(error.message): the outbox schema is missing or older than this binary; run `outbox-relay migrate`")
        }
    }
}
