import Hummingbird
import OutboxSQL

/// `/api/v1/subscriptions`: list, show, create (the secret is returned once),
/// update, delete, rotate the signing secret. JSON is built by PostgreSQL.
struct APISubscriptions: Sendable {
    let database: DatabaseClient

    /// One subscription as JSON; never its secrets, URL credentials or credential-like header values
    /// (`outbox.redacted_url`, `outbox.redacted_headers`). Settings are in seconds (null = the global default).
    static let subscriptionJSON = """
        json_build_object(
            'name', s.name,
            'url', outbox.redacted_url(s.url),
            'event_types', s.event_types,
            'enabled', s.enabled,
            'disabled_reason', s.disabled_reason,
            'ordered', s.ordered,
            'headers', outbox.redacted_headers(s.headers),
            'settings', json_build_object(
                'timeout', extract(epoch FROM s.timeout)::float8,
                'retry_schedule', (SELECT json_agg(extract(epoch FROM step)::float8) FROM unnest(s.retry_schedule) AS step),
                'max_in_flight', s.max_in_flight,
                'rate_limit', s.rate_limit::float8),
            'created_at', s.created_at,
            'updated_at', s.updated_at)
        """

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
            let text = try await database.run { connection in
                try connection.query("""
                    SELECT json_build_object('subscriptions', coalesce(json_agg(\(Self.subscriptionJSON) ORDER BY s.name), '[]'))::text
                    FROM outbox.subscriptions AS s
                    """)[0].decode(String.self, at: 0)
            }
            return APIResponse.json(.ok, text: text)
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
                try connection.query("""
                    INSERT INTO outbox.subscriptions AS s
                        (name, url, event_types, enabled, ordered, secret, headers, timeout, retry_schedule, max_in_flight, rate_limit)
                    VALUES ($2, $3, $4, $5, $6, coalesce($7, outbox.generate_secret()),
                            coalesce(nullif($1::jsonb -> 'headers', 'null'::jsonb), '{}'::jsonb),
                            \(Self.setting("timeout", Self.timeoutValue, current: "NULL")),
                            \(Self.setting("retry_schedule", Self.retryValue, current: "NULL")),
                            \(Self.setting("max_in_flight", Self.maxInFlightValue, current: "NULL")),
                            \(Self.setting("rate_limit", Self.rateLimitValue, current: "NULL")))
                    RETURNING (\(Self.subscriptionJSON)::jsonb || jsonb_build_object('secret', s.secret))::text
                    """, [body.json, name, url, eventTypes, enabled, ordered, secret])[0].decode(String.self, at: 0)
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
            guard updated == 1 else { throw Self.noSubscription(name) }
            return APIResponse.json(.ok, text: try await show(name))
        }
        routes.add(.delete, "/api/v1/subscriptions/:name") { _, context in
            let name = try context.parameter("name")
            let deleted = try await database.run { connection in
                try connection.query("DELETE FROM outbox.subscriptions WHERE name = $1", [name]).rowsAffected
            }
            guard deleted == 1 else { throw Self.noSubscription(name) }
            return Response(status: .noContent)
        }
        routes.add(.post, "/api/v1/subscriptions/:name/rotate-secret") { _, context in
            let name = try context.parameter("name")
            // The current secret keeps signing for 24 hours, as with the CLI's default grace.
            let result = try await database.run { connection in
                try connection.query("""
                    UPDATE outbox.subscriptions
                    SET previous_secret = secret,
                        secret = outbox.generate_secret(),
                        previous_secret_expires_at = now() + interval '24 hours',
                        updated_at = now()
                    WHERE name = $1
                    RETURNING json_build_object('name', name, 'secret', secret,
                                                'previous_secret_expires_at', previous_secret_expires_at)::text
                    """, [name]).rows.map { try $0.decode(String.self, at: 0) }
            }
            guard let text = result.first else { throw Self.noSubscription(name) }
            return APIResponse.json(.ok, text: text)
        }
    }

    private func show(_ name: String) async throws -> String {
        let rows = try await database.run { connection in
            try connection.query("SELECT (\(Self.subscriptionJSON))::text FROM outbox.subscriptions AS s WHERE s.name = $1", [name])
                .rows.map { try $0.decode(String.self, at: 0) }
        }
        guard let text = rows.first else { throw Self.noSubscription(name) }
        return text
    }

    /// The id of the subscription named `name`; 404 when there is none.
    static func id(named name: String, _ database: DatabaseClient) async throws -> Int64 {
        let ids = try await database.run { connection in
            try connection.query("SELECT id FROM outbox.subscriptions WHERE name = $1", [name]).rows
                .map { try $0.decode(Int64.self, at: 0) }
        }
        guard let id = ids.first else { throw noSubscription(name) }
        return id
    }

    static func noSubscription(_ name: String) -> APIError { .notFound("no subscription is named \"\(name)\"") }

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
