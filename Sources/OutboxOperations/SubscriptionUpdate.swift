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
            if !clearHeaders, !removeHeaders.isEmpty || addHeaders != nil {
                // Through the owner-run outbox.change_subscription_headers (sql/0016_roles.sql):
                // keeping the other headers reads their values, which the operator's role may not.
                try connection.query(
                    "SELECT outbox.change_subscription_headers($1, $2::text[], $3::jsonb)",
                    [subscription, removeHeaders, addHeaders])
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
        if clearHeaders {
            // Replaced as a whole: nothing of the old headers is read.
            assign("headers", addHeaders ?? PostgresJSON(text: "{}"), cast: "::jsonb")
        }
        return (assignments, parameters)
    }
}
