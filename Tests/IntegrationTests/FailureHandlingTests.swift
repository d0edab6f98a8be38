import Foundation
import OutboxSQL
import Testing
import TestSupport

/// A broken receiver costs retries, never data: failures are recorded, retried on
/// the schedule, parked as dead letters, and replayable.
@Suite(.timeLimit(.minutes(2)))
struct FailureHandlingTests {
    @Test func aFailureThenASuccessRecordsBothAttempts() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "flaky", receiver.url("/fail-first/1/flaky"), ["order.*"])
        let eventID = try publishOne(sql)
        try await InProcessRelay.running(database: database) {
            _ = try await waitForDelivery(database, status: "succeeded")
        }
        let requests = try receiver.requests()
        #expect(requests.map(\.status) == [500, 204])
        #expect(requests.allSatisfy { $0.webhookID == eventID })
        let attempts = try sql.query("SELECT attempt, status_code, error FROM outbox.attempts ORDER BY attempt").rows
        #expect(try attempts.map { try $0.decode(Int.self, at: 0) } == [1, 2])
        #expect(try attempts.map { try $0.decode(Int?.self, at: 1) } == [500, 204])
        #expect(try attempts[0].decode(String?.self, at: 2) == "HTTP 500")
        #expect(try database.scalar("SELECT attempts FROM outbox.deliveries", as: Int.self) == 2)
    }

    @Test func exhaustedRetriesMakeADeadLetterThatReplayDelivers() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "down", receiver.url("/switch/down"), ["order.*"])
        try receiver.setSwitch("down", status: 500)
        let eventID = try publishOne(sql)
        try await InProcessRelay.running(database: database) {
            let deliveryID = try await waitForDelivery(database, status: "dead")
            // The default test schedule is two retries: three attempts in all.
            #expect(try database.scalar("SELECT attempts FROM outbox.deliveries", as: Int.self) == 3)
            let dead = try sql.query("SELECT delivery_id, event_id, subscription, last_status_code, last_error FROM outbox.dead_letters")
            #expect(dead.count == 1)
            #expect(try dead[0].decode(String.self, at: 1) == eventID)
            #expect(try dead[0].decode(String.self, at: 2) == "down")
            #expect(try dead[0].decode(Int?.self, at: 3) == 500)

            try receiver.setSwitch("down", status: 204)
            try sql.query("SELECT outbox.replay($1)", [deliveryID])
            _ = try await waitForDelivery(database, status: "succeeded")
        }
        #expect(try receiver.requests().map(\.status) == [500, 500, 500, 204])
        #expect(try receiver.requests().allSatisfy { $0.webhookID == eventID })
        #expect(try database.scalar("SELECT array_agg(attempt ORDER BY attempt)::text FROM outbox.attempts", as: String.self) == "{1,2,3,4}")
        #expect(try database.scalar("SELECT count(*) FROM outbox.dead_letters", as: Int.self) == 0)
    }

    @Test func timeoutsRefusedConnectionsAndRedirectsAreFailedAttempts() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "slow", receiver.url("/sleep/3000/slow"), ["slow"])
        try sql.query("UPDATE outbox.subscriptions SET timeout = '300 milliseconds' WHERE name = 'slow'")
        try subscribe(sql, "refused", "http://127.0.0.1:1/refused", ["refused"])
        try subscribe(sql, "redirect", receiver.url("/status/302"), ["redirect"])
        for type in ["slow", "refused", "redirect"] {
            try sql.query("SELECT outbox.publish($1, '{}'::jsonb)", [type])
        }
        let errors = try await InProcessRelay.running(database: database) {
            try await waitUntil("a first attempt for each delivery") {
                try database.scalar("SELECT count(DISTINCT delivery_id) FROM outbox.attempts", as: Int.self) == 3
            }
            return try sql.query("""
                SELECT s.name, a.status_code, a.error
                FROM outbox.attempts AS a
                JOIN outbox.deliveries AS d ON d.id = a.delivery_id
                JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
                WHERE a.attempt = 1
                """).rows.reduce(into: [String: (Int?, String?)]()) { result, row in
                result[try row.decode(String.self, at: 0)] = (try row.decode(Int?.self, at: 1), try row.decode(String?.self, at: 2))
            }
        }
        #expect(errors["slow"]?.0 == nil)
        #expect(errors["slow"]?.1?.contains("timed out") == true)
        #expect(errors["refused"]?.0 == nil)
        #expect(errors["refused"]?.1?.contains("connection refused") == true)
        #expect(errors["redirect"]?.0 == 302)
        #expect(errors["redirect"]?.1?.contains("redirects are not followed") == true)
        #expect(try !receiver.requests().contains { $0.path.hasPrefix("/redirected") })
    }

    @Test func retryAfterIsHonoured() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "busy", receiver.url("/retry-after/2/busy"), ["order.*"])
        // The schedule's first wait is shorter than Retry-After; its longest is the cap.
        try sql.query("UPDATE outbox.subscriptions SET retry_schedule = '{100 milliseconds, 10 seconds}'")
        _ = try publishOne(sql)
        try await InProcessRelay.running(database: database) {
            _ = try await waitForDelivery(database, status: "succeeded")
        }
        let requests = try receiver.requests()
        #expect(requests.map(\.status) == [429, 204])
        let gapMilliseconds = requests[1].receivedAtMs - requests[0].receivedAtMs
        #expect(gapMilliseconds >= 1_900, "retried after \(gapMilliseconds) ms")
    }

    @Test func goneDisablesTheSubscriptionAndItsWorkWaits() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "gone", receiver.url("/status/410"), ["order.*"])
        _ = try publishOne(sql)
        try await InProcessRelay.running(database: database) {
            try await waitUntil("the subscription is disabled") {
                try !database.scalar("SELECT enabled FROM outbox.subscriptions", as: Bool.self)
            }
            #expect(try database.scalar("SELECT disabled_reason FROM outbox.subscriptions", as: String?.self)?.contains("410") == true)
            // Disabled: new events get no delivery, the failed one waits uncharged.
            _ = try publishOne(sql)
            try await Task.sleep(for: .milliseconds(600))
        }
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries", as: Int.self) == 1)
        #expect(try database.scalar("SELECT status FROM outbox.deliveries", as: String.self) == "pending")
        #expect(try receiver.requests().count == 1)
    }
}

/// SPEC §6: without OUTBOX_ALLOW_PRIVATE_NETWORKS a webhook to an internal address is refused
/// after DNS resolution, recorded as a failed attempt, and never reaches the receiver.
@Suite(.timeLimit(.minutes(1)))
struct PrivateNetworkGuardTests {
    @Test func loopbackTargetsAreRefusedByDefault() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "by-name", "http://localhost:\(receiver.port)/ok/by-name", ["order.*"])
        try subscribe(sql, "by-address", receiver.url("/ok/by-address"), ["order.*"])
        _ = try publishOne(sql)
        try await InProcessRelay.running(database: database, configure: { $0.allowPrivateNetworks = false }) {
            try await waitUntil("both deliveries have a failed attempt") {
                try database.scalar("SELECT count(DISTINCT delivery_id) FROM outbox.attempts", as: Int.self) == 2
            }
        }
        let errors = try sql.query("SELECT error FROM outbox.attempts WHERE attempt = 1").rows.map { try $0.decode(String?.self, at: 0) ?? "" }
        #expect(errors.count == 2)
        #expect(errors.allSatisfy { $0.contains("refused to connect to") && $0.contains("loopback") }, "\(errors)")
        #expect(try receiver.requests().isEmpty)
    }
}
