/// What an update does to one delivery setting: leaves it, sets it, or returns
/// it to the relay's global default (NULL in `outbox.subscriptions`).
public enum SettingChange<Value: Sendable>: Sendable {
    case keep
    case set(Value)
    case reset

    /// `set` for a value, `keep` for nil.
    public init(_ value: Value?) {
        self = value.map(SettingChange.set) ?? .keep
    }
}

extension SettingChange {
    /// The value to store at creation, where keeping and resetting both mean the default.
    public var value: Value? {
        if case .set(let value) = self { value } else { nil }
    }
}
