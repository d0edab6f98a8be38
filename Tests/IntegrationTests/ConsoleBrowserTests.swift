import Foundation
import OutboxRelay
import Testing
import TestSupport

/// The console in a real headless Chromium (scripts/testing/console_browser.py):
/// log in, find a dead delivery by event id, replay it, see it succeed; disable a
/// subscription; a read token sees no write buttons; neither token's pages show
/// a subscription's URL password or credential header values. With `OUTBOX_CONSOLE_SCREENSHOTS=DIR` it also
/// saves `console-overview.png` and `console-delivery.png` there (docs/ holds the
/// README's copies).
@Suite("Console: headless browser", .timeLimit(.minutes(3)))
struct ConsoleBrowserTests {
    @Test("log in, find a dead delivery by event id, replay it and see it succeed")
    func replayDeadDelivery() async throws {
        try await APITestServer.running { server in
            let receiver = try TestReceiver()
            defer { receiver.stop() }
            try receiver.setSwitch("console", status: 500)
            let sql = try server.database.connect()
            _ = try sql.query("SELECT outbox.subscribe('billing', $1, ARRAY['invoice.*'])", [receiver.url("/switch/console")])
            _ = try sql.query("SELECT outbox.subscribe('orders', $1, ARRAY['order.*'])", [receiver.url("/ok/orders")])
            let eventID = "evt-\(UUID().uuidString.prefix(8).lowercased())"
            // Markup in the payload must reach the page as text.
            _ = try sql.query("SELECT outbox.publish('invoice.paid', $1::jsonb, event_id => $2)",
                              [#"{"invoice": 42, "note": "<script>alert(1)</script><img src=x>"}"#, eventID])
            for index in 1...20 {
                _ = try sql.query("SELECT outbox.publish('order.created', $1::jsonb)", ["{\"order\": \(index)}"])
            }
            // Created after the events, so it receives none of them: only its page matters here.
            try CredentialRedactionTests.subscribe(sql, url: "https://hooks.example.com/in")

            // No retries: the first failure makes a dead letter.
            try await InProcessRelay.running(database: server.database, configure: { $0.retrySchedule = RetrySchedule(intervals: [], jitter: 0) }) {
                try await waitUntil("the billing delivery is dead and the orders delivered") {
                    try server.scalar("""
                        SELECT count(*) FILTER (WHERE status = 'dead' AND event_id = $1) = 1
                           AND count(*) FILTER (WHERE status = 'succeeded') = 20
                        FROM outbox.deliveries
                        """, [eventID], as: Bool.self)
                }
                try receiver.setSwitch("console", status: 200)

                var arguments = [
                    "--url", "http://127.0.0.1:\(server.port)/console",
                    "--admin-token", server.adminToken, "--read-token", server.readToken, "--event-id", eventID,
                    "--disable", "orders", "--guarded", "guarded",
                ] + CredentialRedactionTests.credentials.flatMap { ["--never-shown", $0] }
                if let directory = ProcessInfo.processInfo.environment["OUTBOX_CONSOLE_SCREENSHOTS"] {
                    arguments += ["--screenshots", directory]
                }
                let started = ContinuousClock.now
                let script = repositoryRoot.appendingPathComponent("scripts/testing/console_browser.py").path
                let result = try await ToolRun.run(["python3", script] + arguments, timeout: .seconds(100))
                #expect(result.status == 0, "the browser story failed:\n\(result.output)")
                #expect(result.output.contains("the delivery succeeded after the replay"), "\(result.output)")
                for scope in ["admin", "read"] {
                    #expect(result.output.contains("shows no endpoint credential to the \(scope) token"), "\(result.output)")
                }
                print("console browser story took \(ContinuousClock.now - started)")
            }
            #expect(try server.scalar("SELECT status FROM outbox.deliveries WHERE event_id = $1", [eventID], as: String.self) == "succeeded")
            #expect(try server.scalar("SELECT enabled FROM outbox.subscriptions WHERE name = 'orders'", as: Bool.self) == false)
            let deliveredAfterReplay = try receiver.requests().filter { $0.webhookID == eventID && $0.status == 200 }
            #expect(deliveredAfterReplay.count == 1, "the receiver got the replayed delivery once")
        }
    }
}
