import OutboxRelay
import OutboxSQL
import Testing
import TestSupport

/// A subscription's timeout may be longer than OUTBOX_LEASE (the schema cannot know
/// the relay's lease): while its request is in flight, upkeep renews the lease every
/// third of it, so a slow answer is neither rescued by another claim nor sent twice.
@Suite(.timeLimit(.minutes(1)))
struct LeaseRenewalTests {
    @Test func aRequestThatOutlivesSeveralLeasesIsSentOnceAndRecordedOnce() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        defer { receiver.stop() }
        let sql = try database.connect()
        // 5 s to answer, 2.5 leases of 2 s; the subscription allows 10 s.
        try subscribe(sql, "slow", receiver.url("/sleep/5000/slow"), ["order.*"])
        try sql.query("UPDATE outbox.subscriptions SET timeout = interval '10 seconds' WHERE name = 'slow'")
        let eventID = try publishOne(sql)
        try await InProcessRelay.running(database: database, configure: { configuration in
            configuration.lease = .seconds(2)
            configuration.timeout = .seconds(1)
        }) {
            _ = try await waitForDelivery(database, status: "succeeded")
        }
        let requests = try receiver.requests().filter { $0.webhookID == eventID }
        #expect(requests.count == 1, "the endpoint was asked \(requests.count) times")
        #expect(try database.scalar("SELECT count(*) FROM outbox.attempts WHERE event_id = $1", [eventID], as: Int64.self) == 1)
        #expect(try database.scalar("SELECT attempt FROM outbox.attempts WHERE event_id = $1", [eventID], as: Int64.self) == 1,
                "no rescue charged an attempt")
    }
}
