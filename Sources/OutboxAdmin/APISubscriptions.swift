import Hummingbird
import OutboxOperations
import OutboxSQL

/// `/api/v1/subscriptions`: list, show, create (the secret is returned once),
/// update, delete, rotate the signing secret. What is shown comes from
/// `SubscriptionListing` (never a secret, URL credentials or credential-like
/// header values), as for the CLI; JSON is built by PostgreSQL.
struct APISubscriptions: Sendable {
    let database: DatabaseClient

    /// Settings from `$1::jsonb -> 'settings'`: SQL for a column's new value, keeping `current` when absent.
    static func setting(_ key: String, _ value: String, current: String) -> String {
        "CASE WHEN ($1::jsonb -> 'settings') ? '\(key)' THEN \(value) ELSE \(current) END"
    }
    static let timeoutValue = "(($1::jsonb -> 'settings' ->> 'timeout')::float8 * interval '1 second')"
    static let retryValue = """
        (SELECT array_agg((step #>> '{}')::float8 * interval '1 second' ORDER BY n)
         FROM jsonb_array_elements(CASE WHEN jsonb_typeof($1::jsonb -> 'settings' -> 'retry_schedule') = 'array'
                                        THEN $1::jsonb -> 'settings' -> 'retry_schedule' ELSE '[]' END)
              WITH ORDINALITY AS steps(step, n))
        """
    static let maxInFlightValue = "($1::jsonb -> 'settings' ->> 'max_in_flight')::integer"
    static let rateLimitValue = "($1::jsonb -> 'settings' ->> 'rate_limit')::numeric"

    func register(on routes: APIRoutes) {
        let database = self.database
        routes.add(.get, "/api/v1/subscriptions") { _, _ in
            APIResponse.json(.ok, text: try await database.run(SubscriptionListing.allJSON))
        }
        routes.add(.get, "/api/v1/subscriptions/:name") { _, context in
            let name = try context.parameter("name")
            return APIResponse.json(.ok, text: try await show(name))
        }
        routes.add(.post, "/api/v1/subscriptions") { request, _ in
            let body = try await APIRequestBody.read(
                &request, allowed: ["name", "url", "event_types", "enabled", "ordered", "secret", "headers", "settings"])
            let name = try body.string("name", required: true)!
            let url = try body.string("url", required: true)!
            let eventTypes = try body.strings("event_types", required: true)!
            let enabled = try body.bool("enabled") ?? true
            let ordered = try body.bool("ordered") ?? false
            let secret = try body.string("secret")
            try body.checkObject("headers")
            try Self.checkSettings(body)
            let text = try await database.transaction { connection in
                let created = try connection.query("""
                    INSERT INTO outbox.subscriptions AS s
                        (name, url, event_types, enabled, ordered, secret, headers, timeout, retry_schedule, max_in_flight, rate_limit)
                    VALUES ($2, $3, $4, $5, $6, coalesce($7, outbox.generate_secret()),
                            coalesce(nullif($1::jsonb -> 'headers', 'null'::jsonb), '{}'::jsonb),
                            \(Self.setting("timeout", Self.timeoutValue, current: "NULL")),
                            \(Self.setting("retry_schedule", Self.retryValue, current: "NULL")),
                            \(Self.setting("max_in_flight", Self.maxInFlightValue, current: "NULL")),
                            \(Self.setting("rate_limit", Self.rateLimitValue, current: "NULL")))
                    RETURNING s.secret
                    """, [body.json, name, url, eventTypes, enabled, ordered, secret])[0].decode(String.self, at: 0)
                // The one time the secret is shown: the listing's object with it added.
                return try connection.query("""
                    SELECT ((\(SubscriptionListing.jsonObject))::jsonb || jsonb_build_object('secret', $2::text))::text
                    FROM outbox.subscription_settings AS s
                    WHERE s.name = $1
                    """, [name, created])[0].decode(String.self, at: 0)
            }
            return APIResponse.json(.created, text: text)
        }
        routes.add(.patch, "/api/v1/subscriptions/:name") { request, context in
            let name = try context.parameter("name")
            let body = try await APIRequestBody.read(&request, allowed: ["url", "event_types", "enabled", "settings"])
            let url = try body.string("url")
            let eventTypes = try body.strings("event_types")
            let enabled = try body.bool("enabled")
            try Self.checkSettings(body)
            let updated = try await database.transaction { connection in
                try connection.query("""
                    UPDATE outbox.subscriptions AS s
                    SET url = coalesce($3, url),
                        event_types = coalesce($4, event_types),
                        enabled = coalesce($5, enabled),
                        disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason
                                               WHEN $5 THEN NULL
                                               ELSE 'disabled through the admin API' END,
                        timeout = \(Self.setting("timeout", Self.timeoutValue, current: "timeout")),
                        retry_schedule = \(Self.setting("retry_schedule", Self.retryValue, current: "retry_schedule")),
                        max_in_flight = \(Self.setting("max_in_flight", Self.maxInFlightValue, current: "max_in_flight")),
                        rate_limit = \(Self.setting("rate_limit", Self.rateLimitValue, current: "rate_limit")),
                        updated_at = now()
                    WHERE name = $2
                    RETURNING 1
                    """, [body.json, name, url, eventTypes, enabled]).count
            }
            guard updated == 1 else { throw OperationError.noSubscription(name) }
            return APIResponse.json(.ok, text: try await show(name))
        }
        routes.add(.delete, "/api/v1/subscriptions/:name") { _, context in
            let removal = SubscriptionRemoval(subscription: try context.parameter("name"))
            _ = try await database.run(removal.run)
            return Response(status: .noContent)
        }
        routes.add(.post, "/api/v1/subscriptions/:name/rotate-secret") { request, context in
            let body = try await APIRequestBody.read(&request, allowed: ["secret", "grace"], optional: true)
            let rotation = SubscriptionRotation(
                subscription: try context.parameter("name"), secret: try body.string("secret"),
                grace: try body.seconds("grace") ?? SubscriptionRotation.defaultGrace)
            let rotated = try await database.run(rotation.run)
            return try APIResponse.json(.ok, encoding: [
                "name": rotation.subscription,
                "secret": rotated.secret,
                "previous_secret_expires_at": APIResponse.timestamp(rotated.previousSecretExpiresAt),
            ])
        }
    }

    private func show(_ name: String) async throws -> String {
        try await database.run { connection in try SubscriptionListing.oneJSON(connection, named: name) }
    }


    /// `settings`: an object of timeout (seconds), retry_schedule (array of seconds),
    /// max_in_flight (integer), rate_limit (requests/s); null resets one to the global default.
    static func checkSettings(_ body: APIRequestBody) throws {
        guard let value = body.fields["settings"], value != .null else { return }
        guard case .object(let settings) = value else { throw APIError.badRequest("field \"settings\" must be a JSON object") }
        for (key, setting) in settings {
            switch (key, setting) {
            case (_, .null): continue
            case ("timeout", .number), ("rate_limit", .number): continue
            case ("max_in_flight", .number(let number)) where number == number.rounded() && abs(number) < 2_000_000_000: continue
            case ("retry_schedule", .array(let steps)) where steps.allSatisfy({ if case .number = $0 { true } else { false } }): continue
            case ("timeout", _), ("rate_limit", _), ("max_in_flight", _), ("retry_schedule", _):
                throw APIError.badRequest("settings.\(key) has the wrong type: timeout and rate_limit are numbers, "
                    + "max_in_flight an integer, retry_schedule an array of seconds")
            default:
                throw APIError.badRequest("unknown field \"settings.\(key)\"; allowed: max_in_flight, rate_limit, retry_schedule, timeout")
            }
        }
    }
}
