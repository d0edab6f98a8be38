import Hummingbird
import OutboxOperations
import OutboxSQL

/// `/api/v1/subscriptions`: list, show, create (the secret is returned once),
/// update, delete, rotate the signing secret. What is shown comes from
/// `SubscriptionListing` (never a secret, URL credentials or credential-like
/// header values), as for the CLI; JSON is built by PostgreSQL.
struct APISubscriptions: Sendable {
    let database: DatabaseClient

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
            var creation = SubscriptionCreation(
                name: try body.string("name", required: true)!, url: try body.string("url", required: true)!,
                eventTypes: try body.strings("event_types", required: true)!)
            creation.enabled = try body.bool("enabled") ?? true
            creation.ordered = try body.bool("ordered") ?? false
            creation.secret = try body.string("secret")
            creation.headers = try body.object("headers")
            let settings = try Settings(body)
            creation.timeout = settings.timeout.value
            creation.retrySchedule = settings.retrySchedule.value
            creation.maxInFlight = settings.maxInFlight.value
            creation.rateLimit = settings.rateLimit.value
            let text = try await database.transaction { [creation] connection in
                let created = try creation.run(connection)
                // The one time the secret is shown: the listing's object with it added.
                return try connection.query("""
                    SELECT ((\(SubscriptionListing.jsonObject))::jsonb || jsonb_build_object('secret', $2::text))::text
                    FROM outbox.subscription_settings AS s
                    WHERE s.name = $1
                    """, [creation.name, created])[0].decode(String.self, at: 0)
            }
            return APIResponse.json(.created, text: text)
        }
        routes.add(.patch, "/api/v1/subscriptions/:name") { request, context in
            let name = try context.parameter("name")
            let body = try await APIRequestBody.read(&request, allowed: ["url", "event_types", "enabled", "settings"])
            var update = SubscriptionUpdate(subscription: name)
            update.url = try body.string("url")
            update.eventTypes = try body.strings("event_types")
            update.enabled = try body.bool("enabled")
            update.disabledReason = "disabled through the admin API"
            let settings = try Settings(body)
            (update.timeout, update.retrySchedule, update.maxInFlight, update.rateLimit) =
                (settings.timeout, settings.retrySchedule, settings.maxInFlight, settings.rateLimit)
            _ = try await database.run(update.run)
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
    /// max_in_flight (integer), rate_limit (requests/s); null resets one to the global
    /// default, and so does an empty retry_schedule. The schema checks the values' ranges.
    struct Settings {
        var timeout: SettingChange<Duration> = .keep
        var retrySchedule: SettingChange<[Duration]> = .keep
        var maxInFlight: SettingChange<Int> = .keep
        var rateLimit: SettingChange<Double> = .keep

        init(_ body: APIRequestBody) throws {
            guard let value = body.fields["settings"], value != .null else { return }
            guard case .object(let settings) = value else { throw APIError.badRequest("field \"settings\" must be a JSON object") }
            for (key, setting) in settings {
                switch (key, setting) {
                case ("timeout", .null): timeout = .reset
                case ("retry_schedule", .null), ("retry_schedule", .array([])): retrySchedule = .reset
                case ("max_in_flight", .null): maxInFlight = .reset
                case ("rate_limit", .null): rateLimit = .reset
                case ("timeout", .number(let seconds)): timeout = .set(try Self.duration(seconds, key))
                case ("rate_limit", .number(let rate)): rateLimit = .set(rate)
                case ("max_in_flight", .number(let number)) where number == number.rounded() && abs(number) < 2_000_000_000:
                    maxInFlight = .set(Int(number))
                case ("retry_schedule", .array(let steps)):
                    retrySchedule = .set(try steps.map { step in
                        guard case .number(let seconds) = step else { throw Self.wrongType(key) }
                        return try Self.duration(seconds, key)
                    })
                case ("timeout", _), ("rate_limit", _), ("max_in_flight", _), ("retry_schedule", _):
                    throw Self.wrongType(key)
                default:
                    throw APIError.badRequest("unknown field \"settings.\(key)\"; allowed: max_in_flight, rate_limit, retry_schedule, timeout")
                }
            }
        }

        static func wrongType(_ key: String) -> APIError {
            APIError.badRequest("settings.\(key) has the wrong type: timeout and rate_limit are numbers, "
                + "max_in_flight an integer, retry_schedule an array of seconds")
        }

        /// Seconds as a duration; the sign is left to the schema, which names the setting in its refusal.
        static func duration(_ seconds: Double, _ key: String) throws -> Duration {
            guard abs(seconds) <= 1e10 else {
                throw APIError(.unprocessableContent, "invalid", "settings.\(key) is out of range: at most 10000000000 seconds")
            }
            return .microseconds(Int64((seconds * 1_000_000).rounded()))
        }
    }
}
