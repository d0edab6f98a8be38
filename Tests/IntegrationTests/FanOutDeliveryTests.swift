import Foundation
import OutboxSQL
import Testing
import TestSupport

/// Every committed event reaches every matching subscription exactly once,
/// whatever order transactions commit in and whether or not a NOTIFY arrives.
@Suite(.timeLimit(.minutes(2)))
struct FanOutDeliveryTests {
    @Test func eachEventReachesEachMatchingSubscriptionOnce() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "orders", receiver.url("/ok/orders"), ["order.*"])
        try subscribe(sql, "created", receiver.url("/ok/created"), ["order.created"])
        try subscribe(sql, "everything", receiver.url("/ok/everything"), ["*"])
        try subscribe(sql, "users", receiver.url("/ok/users"), ["user.*"])

        try publish(sql, count: 250, type: "order.created", from: 1)
        try publish(sql, count: 250, type: "order.paid", from: 251)
        #expect(throws: RolledBack.self) {
            try sql.withTransaction { sql in
                try sql.query("SELECT outbox.publish('order.created', '{}'::jsonb, event_id => 'rolled-back')")
                throw RolledBack()
            }
        }
        let received = try await InProcessRelay.running(database: database) {
            // Half before the relay started, half while it runs.
            try publish(sql, count: 250, type: "order.created", from: 501)
            try publish(sql, count: 250, type: "order.paid", from: 751)
            return try await receiver.waitForRequests(count: 2_500, timeout: .seconds(60))
        }

        let byPath = Dictionary(grouping: try receiver.requests(), by: \.path)
        #expect(byPath["/ok/orders"]?.count == 1_000)
        #expect(byPath["/ok/created"]?.count == 500)
        #expect(byPath["/ok/everything"]?.count == 1_000)
        #expect(byPath["/ok/users"] == nil)
        for (path, requests) in byPath {
            #expect(Set(requests.compactMap(\.webhookID)).count == requests.count, "duplicates at \(path)")
        }
        #expect(!received.contains { $0.webhookID == "rolled-back" })
        let eventIDs = Set(try sql.query("SELECT event_id FROM outbox.events").rows.map { try $0.decode(String.self, at: 0) })
        #expect(Set(byPath["/ok/everything"]?.compactMap(\.webhookID) ?? []) == eventIDs)
        #expect(try database.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'succeeded' AND attempts = 1", as: Int.self) == 2_500)
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts WHERE status_code = 204", as: Int.self) == 2_500)
    }

    @Test func aTransactionThatCommitsLastIsStillDelivered() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "orders", receiver.url("/ok/orders"), ["order.*"])
        try await InProcessRelay.running(database: database) {
            let early = try database.connect()
            try early.execute("BEGIN")
            try early.query("SELECT outbox.publish('order.created', '{}'::jsonb, event_id => 'first-in-last-out')")
            try sql.query("SELECT outbox.publish('order.created', '{}'::jsonb, event_id => 'second')")
            _ = try await receiver.waitForRequests(count: 1, matching: { $0.webhookID == "second" }, timeout: .seconds(10))
            let earlyID = try early.query("SELECT id FROM outbox.events WHERE event_id = 'first-in-last-out'")[0].decode(Int64.self, at: 0)
            let laterID = try database.scalar("SELECT id FROM outbox.events WHERE event_id = 'second'", as: Int64.self)
            #expect(earlyID < laterID)
            try early.execute("COMMIT")
            _ = try await receiver.waitForRequests(count: 1, matching: { $0.webhookID == "first-in-last-out" }, timeout: .seconds(10))
        }
    }

    @Test func workThatBecomesDueWithoutANotificationIsFoundByPolling() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        try subscribe(sql, "orders", receiver.url("/ok/orders"), ["order.*"])
        try await InProcessRelay.running(database: database, configure: { $0.pollInterval = .milliseconds(300) }) {
            // The commit notifies while nothing is due yet; nothing notifies when it becomes due.
            try sql.withTransaction { sql in
                try publish(sql, count: 20, type: "order.created", from: 1)
                try QueuedDeliveries.store(sql)
                try sql.query("UPDATE outbox.delivery_queue SET next_attempt_at = now() + interval '1 second'")
            }
            // Only the poll can find them: no notification comes when they become due.
            _ = try await receiver.waitForRequests(count: 20, timeout: .seconds(10))
        }
    }
}

struct RolledBack: Error {}
