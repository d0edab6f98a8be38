import Foundation
import OutboxSQL
import Testing
import TestSupport

/// "Secrets, passwords and connection strings never appear in logs or metrics"
/// (SPEC §6), even at trace level, through deliveries that succeed and fail and
/// through a database error.
@Suite(.timeLimit(.minutes(2)))
struct SecretLoggingTests {
    @Test func neitherPasswordNorSigningSecretIsLoggedOrExported() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()

        // A login with a password. The test server trusts local connections, so the
        // password is never checked, but the relay is given it in its URL.
        let role = "relay_user_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(8).lowercased()
        let password = "pw-s3cret-XYZ"
        // The role name is ours (hex digits) and the password a constant: safe in the text.
        try sql.execute("CREATE ROLE \(role) LOGIN SUPERUSER PASSWORD '\(password)'")
        defer { try? sql.execute("DROP ROLE IF EXISTS \(role)") }
        let environment = ProcessInfo.processInfo.environment
        let port = try #require(environment["PGPORT"], "PGPORT names the test server")
        let databaseURL = "postgresql://\(role):\(password)@127.0.0.1:\(port)/\(database.name)"

        var keyBytes = [UInt8](repeating: 0, count: 32)
        for index in keyBytes.indices { keyBytes[index] = UInt8.random(in: 0...255) }
        let key = Data(keyBytes).base64EncodedString()
        let secret = "whsec_" + key
        let urlPassword = "url-pa55word-" + UUID().uuidString.prefix(8)
        for (name, path) in [("signed-ok", "/ok/secret"), ("signed-flaky", "/fail-first/1/secret"), ("signed-failing", "/status/500/secret")] {
            try sql.query("SELECT outbox.subscribe($1, $2, ARRAY['order.*'], $3)", [name, receiver.url(path), secret])
        }
        // Credentials in a webhook URL are a password too.
        try sql.query("SELECT outbox.subscribe('with-credentials', $1, ARRAY['order.*'], $2)",
                      ["http://hook:\(urlPassword)@127.0.0.1:\(receiver.port)/ok/credentials", secret])

        let relay = try RelayProcess(database: database, environment: [
            "OUTBOX_DATABASE_URL": databaseURL,
            "OUTBOX_LOG_LEVEL": "trace",
            "OUTBOX_LOG_FORMAT": "json",
            "OUTBOX_RETRY_SCHEDULE": "1s,1s",
            // The failing endpoint must not open its circuit and pause before its deliveries are dead.
            "OUTBOX_BREAKER_FAILURES": "1000",
        ])
        let admin = try await AdminPort.of(relay)
        try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) { $0.count == 1 }
        let expected = try ProcessTestSQL.publish(sql, count: 5)
        _ = try await waitForDeliveries(of: expected, at: "/ok/secret", on: receiver, relays: [relay], timeout: .seconds(15))
        _ = try await waitForDeliveries(of: expected, at: "/fail-first/1/secret", on: receiver, relays: [relay], timeout: .seconds(15))
        _ = try await waitForDeliveries(of: expected, at: "/ok/credentials", on: receiver, relays: [relay], timeout: .seconds(15))
        let dead = try await ProcessTestSQL.waitForDeliveries(sql, where: "status = 'dead'", count: 5, timeout: .seconds(20))
        #expect(dead == 5, "the failing subscription's deliveries became dead letters")

        // Database errors: every session of the relay is ended once, and for a moment it
        // may not log in again, so its reconnection errors (which describe the
        // connection) are logged too.
        let logBefore = relay.log.utf8.count
        try sql.execute("ALTER ROLE \(role) NOLOGIN")
        let ended = try sql.query(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1", [role]
        )[0].decode(Int.self, at: 0)
        #expect(ended >= 1, "the relay's sessions were ended")
        do {
            try await Self.waitForLogLine(of: relay, after: logBefore, timeout: .seconds(15)) { line in
                line.contains("\"level\":\"error\"") && line.contains(role)
            }
        } catch {
            Issue.record("no error naming the database login was logged: \(error)")
        }
        try sql.execute("ALTER ROLE \(role) LOGIN")
        // It reconnects and goes on delivering.
        let more = try ProcessTestSQL.publish(sql, count: 3)
        _ = try await waitForDeliveries(of: more, at: "/ok/secret", on: receiver, relays: [relay], timeout: .seconds(20))

        let metrics = try await admin.get("/metrics")
        #expect(metrics.status == 200)
        #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
        let log = relay.log

        let forbidden: [(what: String, text: String)] = [
            ("database password", password),
            ("signing secret", secret),
            ("signing key", String(key.dropLast(1))),  // without its `=` padding
            ("start of the signing key", String(key.prefix(16))),
            ("password in a webhook URL", urlPassword),
        ]
        let lines = log.split(separator: "\n")
        for (what, text) in forbidden {
            let leaking = lines.filter { $0.contains(text) }
            #expect(leaking.isEmpty, "the \(what) is in \(leaking.count) log lines, e.g. \(leaking.prefix(3))")
            #expect(!metrics.body.contains(text), "the \(what) is in /metrics")
        }

        // The run was really logged at trace level, as JSON, including the places a
        // connection string would show: the configuration at start and the database error.
        let notJSON = lines.filter { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] == nil
        }
        #expect(notJSON.isEmpty, "log lines that are not JSON objects: \(notJSON.prefix(3))")
        #expect(lines.contains { $0.contains("\"configuration\"") && $0.contains("database=") }, "the configuration is logged at start")
        #expect(lines.contains { $0.contains("\"level\":\"trace\"") || $0.contains("\"level\":\"debug\"") },
                "OUTBOX_LOG_LEVEL=trace took effect")
    }

    /// Polls the relay's log every 50 ms until a line written after byte `offset` satisfies `matches`.
    private static func waitForLogLine(
        of relay: RelayProcess, after offset: Int, timeout: Duration, _ matches: (Substring) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let recent = String(decoding: relay.log.utf8.dropFirst(offset), as: UTF8.self)
            if recent.split(separator: "\n").contains(where: matches) { return }
            try relay.requireRunning()
            if ContinuousClock.now >= deadline {
                throw RelayProcessError("the relay logged no matching line within \(timeout); its log ends:\n\(relay.logTail())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
