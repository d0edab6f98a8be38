import OutboxSQL

/// Changes what is given of a subscription and leaves the rest; returns it as
/// it is now. Used by `subscription update` and `PATCH /api/v1/subscriptions/{name}`.
public struct SubscriptionUpdate: Sendable {
    public var subscription: String
    public var url: String?
    public var eventTypes: [String]?
    public var ordered: Bool?
    /// Enabling clears `disabled_reason`; disabling records `disabledReason`.
    public var enabled: Bool?
    public var disabledReason = "disabled by an operator"
    public var timeout: SettingChange<Duration> = .keep
    public var retrySchedule: SettingChange<[Duration]> = .keep
    public var maxInFlight: SettingChange<Int> = .keep
    public var rateLimit: SettingChange<Double> = .keep
    /// Static headers: names to drop (any spelling), then headers to add or replace.
    public var removeHeaders: [String] = []
    public var addHeaders: PostgresJSON?
    /// Drops every static header first.
    public var clearHeaders = false

    public init(subscription: String) {
        self.subscription = subscription
    }

    public func run(_ connection: Connection) throws -> SubscriptionListing.Record {
        let (assignments, parameters) = statement()
        // Only fixed column names go into the SQL text; every value is a bind parameter.
        let sql = "UPDATE outbox.subscriptions\nSET " + assignments.joined(separator: ",\n    ") + "\nWHERE name = $1"
        return try connection.withTransaction { connection in
            guard try connection.query(sql, parameters).rowsAffected == 1 else {
                throw OperationError.noSubscription(subscription)
            }
            return try SubscriptionListing.one(connection, named: subscription)
        }
    }

    private func statement() -> (assignments: [String], parameters: [any PostgresEncodable]) {
        var parameters: [any PostgresEncodable] = [subscription]
        var assignments = ["updated_at = now()"]
        func assign(_ column: String, _ value: any PostgresEncodable, cast: String = "") {
            parameters.append(value)
            assignments.append("\(column) = $\(parameters.count)\(cast)")
        }
        func change<Value: PostgresEncodable>(_ column: String, _ setting: SettingChange<Value>, cast: String = "") {
            switch setting {
            case .keep: break
            case .reset: assignments.append("\(column) = NULL")
            case .set(let value): assign(column, value, cast: cast)
            }
        }
        if let url { assign("url", url) }
        if let eventTypes { assign("event_types", eventTypes, cast: "::text[]") }
        if let ordered { assign("ordered", ordered) }
        if let enabled {
            assign("enabled", enabled)
            assign("disabled_reason", enabled ? nil : disabledReason as String?)
        }
        change("timeout", timeout, cast: "::interval")
        change("retry_schedule", retrySchedule, cast: "::interval[]")
        change("max_in_flight", maxInFlight)
        change("rate_limit", rateLimit, cast: "::numeric")
        if clearHeaders || !removeHeaders.isEmpty || addHeaders != nil {
            // Header names are case-insensitive: drop every spelling of a removed or
            // replaced name, then add the new values.
            parameters.append(clearHeaders)
            parameters.append(removeHeaders.map { $0.lowercased() })
            parameters.append(addHeaders ?? PostgresJSON(text: "{}"))
            let (clear, remove, add) = (parameters.count - 2, parameters.count - 1, parameters.count)
            assignments.append("""
                headers = (SELECT coalesce(jsonb_object_agg(h.key, h.value), '{}'::jsonb)
                           FROM jsonb_each(headers) AS h
                           WHERE NOT $\(clear)::boolean
                             AND lower(h.key) <> ALL ($\(remove)::text[])
                             AND NOT EXISTS (SELECT 1 FROM jsonb_object_keys($\(add)::jsonb) AS k WHERE lower(k) = lower(h.key)))
                          || $\(add)::jsonb
                """)
        }
        return (assignments, parameters)
    }
}
