import Foundation
import OutboxSQL
import TestSupport
import Testing

/// LISTEN/NOTIFY: a notification from another session arrives promptly, by waiting on
/// the socket rather than polling the server.
@Suite(.timeLimit(.minutes(1)))
struct NotificationTests {
    static let channel = "outbox_test"

    @Test func listenerReceivesANotifyFromAnotherConnectionWithinOneSecond() async throws {
        let database = try TestDatabase(migrated: false)
        let sender = DatabaseClient(target: database.target, name: "notify-sender")
        defer { sender.close() }
        let senderPID = try await sender.run { $0.backendPID }

        try await NotificationListener.withListener(target: database.target, channels: [Self.channel]) { listener in
            try await listener.connected()
            #expect(listener.isConnected)
            try await sender.run { _ = try $0.query("SELECT pg_notify($1, $2)", [Self.channel, "order 42 ✓"]) }

            let notification = try await listener.notification(within: .seconds(1))
            #expect(notification.channel == Self.channel)
            #expect(notification.payload == "order 42 ✓")
            #expect(notification.senderPID == senderPID)
        }
    }

    @Test func listenerReportsEachNotificationInOrder() async throws {
        let database = try TestDatabase(migrated: false)
        let sender = try database.connect()
        try await NotificationListener.withListener(target: database.target, channels: ["first", "second"]) { listener in
            try await listener.connected()
            try sender.query("SELECT pg_notify('first', '1')")
            try sender.query("SELECT pg_notify('second', '2')")
            try sender.query("SELECT pg_notify('first', '3')")

            var received: [String] = []
            for _ in 0..<3 {
                let notification = try await listener.notification(within: .seconds(1))
                received.append("\(notification.channel):\(notification.payload)")
            }
            #expect(received == ["first:1", "second:2", "first:3"])
        }
    }

    @Test func connectionSocketBecomesReadableWhenANotificationArrives() throws {
        let database = try TestDatabase(migrated: false)
        let listening = try database.connect()
        try listening.execute("LISTEN \(Self.channel)")
        let sender = try database.connect()

        try sender.query("SELECT pg_notify($1, $2)", [Self.channel, "hello"])

        let received = try listening.waitForNotifications(upTo: .seconds(1))
        #expect(received.map(\.payload) == ["hello"])
        #expect(received.first?.senderPID == sender.backendPID)
    }

    @Test func onlyCommittedNotificationsAreDelivered() throws {
        let database = try TestDatabase(migrated: false)
        let listening = try database.connect()
        try listening.execute("LISTEN \(Self.channel)")
        let sender = try database.connect()

        struct Abandoned: Error {}
        #expect(throws: Abandoned.self) {
            try sender.withTransaction { transaction in
                try transaction.query("SELECT pg_notify($1, $2)", [Self.channel, "rolled back"])
                throw Abandoned()
            }
        }
        try sender.withTransaction { transaction in
            _ = try transaction.query("SELECT pg_notify($1, $2)", [Self.channel, "committed"])
        }

        let received = try listening.waitForNotifications(upTo: .seconds(1))
        #expect(received.map(\.payload) == ["committed"])
    }
}
