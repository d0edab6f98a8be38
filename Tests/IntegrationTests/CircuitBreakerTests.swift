import Foundation
import OutboxSQL
import Testing
import TestSupport

/// The per-subscription circuit breaker and limits (SPEC §5): a failing endpoint is
/// paused without being charged attempts, probed with one request, and closed when
/// it recovers; max in flight and rate limits hold; endlessly failing ones are disabled.
@Suite(.timeLimit(.minutes(2)))
struct CircuitBreakerTests {
    @Test func failuresOpenTheCircuitAndAProbeClosesIt() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "flaky", receiver.url("/switch/flaky"), ["order.*"])
        try sql.query("UPDATE outbox.subscriptions SET retry_schedule = array_fill(interval '100 milliseconds', ARRAY[100])")
        try receiver.setSwitch("flaky", status: 500)
        try publish(sql, count: 20, type: "order.created", from: 1)
        try await InProcessRelay.running(database: database, configure: { configuration in
            configuration.breaker.failureThreshold = 20
            configuration.breaker.cooldown = .seconds(1)
            configuration.breaker.maxCooldown = .seconds(4)
        }) {
            try await waitUntil("the circuit opens") { try circuitState(database) == "open" }
            #expect(try attemptCount(database) >= 20)
            #expect(try database.scalar("SELECT consecutive_failures FROM outbox.subscription_health", as: Int.self) >= 20)
            let firstOpenUntil = try circuitOpenUntil(database)

            // Still failing: after the cool-down one probe, then open again for twice as long.
            try await waitUntil("the probe fails and the circuit reopens") {
                try circuitState(database) == "open" && circuitOpenUntil(database) > firstOpenUntil
            }
            let secondOpenUntil = try circuitOpenUntil(database)
            #expect(try database.scalar("SELECT extract(epoch FROM circuit_cooldown)::integer FROM outbox.subscription_state", as: Int.self) == 2)

            try receiver.setSwitch("flaky", status: 204)
            try await waitUntil("all delivered", timeout: .seconds(30)) {
                try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'succeeded'", as: Int.self) == 20
            }
            // None is claimed while it is open. The circuit opened at firstOpenUntil - 1 s, the start of
            // the recording transaction; retries claimed before that transaction committed may still
            // start just after it (on a loaded machine, several), so the count starts half a second on.
            let startedWhileOpen = try database.scalar("""
                SELECT count(*) FROM outbox.attempts
                WHERE started_at >= to_timestamp(\(firstOpenUntil) - 0.5) AND started_at < to_timestamp(\(secondOpenUntil))
                """, as: Int.self)
            #expect(startedWhileOpen == 1, "one probe between the two cool-downs")
            #expect(try circuitState(database) == "closed")
            #expect(try database.scalar("SELECT consecutive_failures FROM outbox.subscription_health", as: Int.self) == 0)
        }
    }

    @Test func maxInFlightLimitsConcurrentRequests() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "narrow", receiver.url("/sleep/300/narrow"), ["order.*"])
        try sql.query("UPDATE outbox.subscriptions SET max_in_flight = 2")
        try publish(sql, count: 10, type: "order.created", from: 1)
        let requests = try await InProcessRelay.running(database: database) {
            try await receiver.waitForRequests(count: 10, timeout: .seconds(20))
        }
        // Two at a time, 300 ms each: five rounds.
        let span = requests.map(\.receivedAtMs).max()! - requests.map(\.receivedAtMs).min()!
        #expect(span >= 4 * 300 - 50, "10 requests arrived within \(span) ms")
        for request in requests {
            let overlapping = requests.filter { abs($0.receivedAtMs - request.receivedAtMs) < 250 }
            #expect(overlapping.count <= 2, "\(overlapping.count) requests within 250 ms")
        }
    }

    @Test func aRateLimitSpacesRequests() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "paced", receiver.url("/ok/paced"), ["order.*"])
        try sql.query("UPDATE outbox.subscriptions SET rate_limit = 20")
        try publish(sql, count: 60, type: "order.created", from: 1)
        let requests = try await InProcessRelay.running(database: database) {
            try await receiver.waitForRequests(count: 60, timeout: .seconds(20))
        }
        // A burst of one second's worth (20), then 20 per second: the last ~2 s after the first.
        let span = requests.map(\.receivedAtMs).max()! - requests.map(\.receivedAtMs).min()!
        #expect(span >= 1_500, "60 requests at 20/s arrived within \(span) ms")
        #expect(Set(requests.compactMap(\.webhookID)).count == 60)
    }

    @Test func anEndpointFailingForTheDisablePeriodIsDisabled() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "dead-end", receiver.url("/status/503"), ["order.*"])
        try sql.query("UPDATE outbox.subscriptions SET retry_schedule = array_fill(interval '100 milliseconds', ARRAY[100])")
        _ = try publishOne(sql)
        try await InProcessRelay.running(database: database, configure: { $0.breaker.disableAfter = .seconds(1) }) {
            try await waitUntil("the subscription is disabled") {
                try !database.scalar("SELECT enabled FROM outbox.subscriptions", as: Bool.self)
            }
        }
        let reason = try database.scalar("SELECT disabled_reason FROM outbox.subscriptions", as: String?.self)
        #expect(reason?.contains("failing continuously") == true, "\(reason ?? "nil")")
        #expect(try database.scalar("SELECT status FROM outbox.deliveries", as: String.self) == "pending")
    }
}

private func circuitState(_ database: TestDatabase) throws -> String {
    try database.scalar("SELECT circuit_state FROM outbox.subscription_health", as: String.self)
}

/// The end of the current cool-down, in seconds since the epoch.
private func circuitOpenUntil(_ database: TestDatabase) throws -> Double {
    try database.scalar("SELECT extract(epoch FROM circuit_open_until)::float8 FROM outbox.subscription_state", as: Double.self)
}

private func attemptCount(_ database: TestDatabase) throws -> Int {
    try database.scalar("SELECT count(*) FROM outbox.attempts", as: Int.self)
}
