/// Why an operation was refused before or after the database was asked: what
/// was wrong, in words an operator can act on. The CLI prints it; the admin API
/// answers 404 (`notFound`), 400 (`invalid`) or 409 (`conflict`) with it.
public struct OperationError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The named thing does not exist.
        case notFound
        /// The request itself is wrong (a contradiction, a value out of range).
        case invalid
        /// It would clash with what exists (a name taken).
        case conflict
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    public static func noSubscription(_ name: String) -> OperationError {
        OperationError(.notFound, "no subscription is named \"\(name)\"")
    }

    public static func noDelivery(_ id: Int64) -> OperationError {
        OperationError(.notFound, "no delivery has id \(id)")
    }
}
