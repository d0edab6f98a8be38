import Foundation
import OutboxRelay
import OutboxSQL
import Testing
import TestSupport

/// Publishers NOTIFY only while a relay sleeps (a NOTIFY makes commits queue on a
/// global lock), and a relay sleeps only when no publisher can have missed that it
/// does: the wake-up lock (sql/0009 outbox.check_event, sql/0010 outbox.prepare_to_sleep).
@Suite(.timeLimit(.minutes(1)))
struct WakeUpTests {
    @Test func publishersNotifyOnlyWhileARelaySleeps() async throws {
        let (database, sql, listening) = try listenedDatabase()
        let store = DeliveryStore(target: database.target, owner: "wake-test", lease: .seconds(30))
        defer { store.close() }

        try publish(sql, "before-any-relay")
        #expect(try listening.waitForNotifications(upTo: .milliseconds(300)).isEmpty, "nobody sleeps: no NOTIFY")
        #expect(try await store.claim(batchSize: 10, defaultMaxInFlight: 10).map(\.eventID) == ["before-any-relay"])

        #expect(try await store.prepareToSleep(), "nothing due, no publisher committing: the relay may sleep")
        try publish(sql, "while-asleep")
        #expect(try listening.waitForNotifications(upTo: .seconds(2)).count == 1, "a sleeping relay is woken")

        #expect(try await store.claim(batchSize: 10, defaultMaxInFlight: 10).map(\.eventID) == ["while-asleep"])
        try await store.stopSleeping()
        try publish(sql, "while-busy")
        #expect(try listening.waitForNotifications(upTo: .milliseconds(300)).isEmpty, "a busy relay is not notified")
    }

    @Test func aRelayDoesNotSleepWhileAPublisherMayHaveMissedItsAnnouncement() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('wake', 'https://example.com/hook', ARRAY['*'])")
        let store = DeliveryStore(target: database.target, owner: "wake-test", lease: .seconds(30))
        defer { store.close() }

        // This publisher looked for sleeping relays (none) and has not committed yet.
        let publisher = try database.connect()
        try publisher.execute("BEGIN")
        try publish(publisher, "in-flight")
        #expect(try await store.prepareToSleep() == false, "the publisher may commit after the relay's last look")
        #expect(try await store.claim(batchSize: 10, defaultMaxInFlight: 10).isEmpty)

        try publisher.execute("COMMIT")
        #expect(try await store.claim(batchSize: 10, defaultMaxInFlight: 10).map(\.eventID) == ["in-flight"])
        #expect(try await store.prepareToSleep(), "its work was claimed, nobody is committing: the relay may sleep")
    }

    @Test func aRelayDoesNotSleepWhileAnotherReplicaClaimsDueWork() async throws {
        let database = try TestDatabase()
        let sql = try database.connect()
        try sql.query("SELECT outbox.subscribe('wake', 'https://example.com/hook', ARRAY['*'])")
        try publish(sql, "due")
        let store = DeliveryStore(target: database.target, owner: "wake-test", lease: .seconds(30))
        defer { store.close() }

        // Another replica is in the middle of claiming this subscription (its claim lock, sql/0005).
        let otherReplica = try database.connect()
        try otherReplica.query(
            "SELECT pg_advisory_lock(1868722808, (id & 2147483647)::integer) FROM outbox.subscriptions WHERE name = 'wake'")
        #expect(try await store.claim(batchSize: 10, defaultMaxInFlight: 10).isEmpty)
        #expect(try await store.prepareToSleep() == false, "due work is waiting: look again soon, the other may stop")

        try otherReplica.query("SELECT pg_advisory_unlock_all()")
        #expect(try await store.claim(batchSize: 10, defaultMaxInFlight: 10).map(\.eventID) == ["due"])
        #expect(try await store.prepareToSleep(), "nothing due any more")
    }

    @Test func oneRelaySleepsAtATime() async throws {
        let (database, _, _) = try listenedDatabase()
        let first = DeliveryStore(target: database.target, owner: "first", lease: .seconds(30))
        let second = DeliveryStore(target: database.target, owner: "second", lease: .seconds(30))
        defer { first.close(); second.close() }
        #expect(try await first.prepareToSleep())
        #expect(try await second.prepareToSleep() == false, "the other replica looks again soon")
        try await first.stopSleeping()
        #expect(try await second.prepareToSleep())
    }

    @Test func publishersDoNotNotifyARelayThatIsGone() async throws {
        let (database, sql, listening) = try listenedDatabase()
        let departed = DeliveryStore(target: database.target, owner: "departed", lease: .seconds(30))
        #expect(try await departed.prepareToSleep())
        try publish(sql, "while-asleep")
        #expect(try listening.waitForNotifications(upTo: .seconds(2)).count == 1)

        // Stopped while asleep: its session, and the wake-up lock with it, ends.
        departed.close()
        try await waitUntil("the departed relay's wake-up lock is gone", timeout: .seconds(10)) {
            // pg_locks is the whole cluster's: other tests' relays sleep in their own databases.
            try sql.query("""
                SELECT count(*) FROM pg_locks
                WHERE locktype = 'advisory' AND classid = 1868722809
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """)[0]
                .decode(Int.self, at: 0) == 0
        }
        try publish(sql, "after-it-left")
        #expect(try listening.waitForNotifications(upTo: .milliseconds(300)).isEmpty, "a NOTIFY nobody hears costs every commit")
    }

    /// A database with one subscription, a connection to publish on and one that listens for the wake-up.
    private func listenedDatabase() throws -> (TestDatabase, Connection, listening: Connection) {
        let database = try TestDatabase()
        let sql = try database.connect()
        let listening = try database.connect()
        try listening.execute("LISTEN outbox_work")
        try sql.query("SELECT outbox.subscribe('wake', 'https://example.com/hook', ARRAY['*'])")
        return (database, sql, listening)
    }

    private func publish(_ sql: Connection, _ eventID: String) throws {
        try sql.query("SELECT outbox.publish('wake.test', '{}'::jsonb, event_id => $1)", [eventID])
    }
}
