import Foundation
import OutboxSQL
import Testing
import TestSupport

/// Several relay processes share one database without losing or repeating work.
@Suite(.timeLimit(.minutes(2)))
struct ReplicaTests {
    @Test func twoRelaysDeliverFiveThousandEventsExactlyOnce() async throws {
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/ok/replicas"
        try ProcessTestSQL.subscribe(sql, name: "replicas", url: receiver.url(path))
        try logClaims(sql)
        // No crash and no stall here, so leases long enough that none can expire under load.
        let settings = ["OUTBOX_LEASE": "30s", "OUTBOX_TIMEOUT": "10s"]
        let relays = [
            try RelayProcess(database: database, environment: settings),
            try RelayProcess(database: database, environment: settings),
        ]
        try await ProcessTestSQL.waitForListeners(sql, timeout: .seconds(15)) { $0.count == 2 }
        let expected = try ProcessTestSQL.publish(sql, count: 5_000)

        let tally = try await waitForDeliveries(
            of: expected, at: path, on: receiver, relays: relays, timeout: .seconds(90))
        #expect(tally.missing.isEmpty)
        #expect(tally.duplicates == 0, "\(tally)")
        #expect(try receiver.requests().filter { $0.path == path }.count == expected.count)
        let succeeded = try await ProcessTestSQL.waitForDeliveries(
            sql, where: "status = 'succeeded' AND attempts = 1", count: expected.count, timeout: .seconds(20))
        #expect(succeeded == expected.count)
        #expect(try sql.query("SELECT count(*) FROM outbox.attempts")[0].decode(Int.self, at: 0) == expected.count)
        // Each delivery claimed once. Which replica claims is up to timing, not a promise: the one whose
        // recorder just freed room under max in flight claims at once, while the other looks again within
        // 100 ms, so on a loaded machine one replica may take every claim (seen in CI).
        let claims = try sql.query("SELECT owner, count(*) FROM public.claim_log GROUP BY owner").rows
            .map { (owner: try $0.decode(String.self, at: 0), count: try $0.decode(Int.self, at: 1)) }
        #expect(claims.reduce(0) { $0 + $1.count } == expected.count, "claims per owner: \(claims)")
        #expect(try sql.query("SELECT count(DISTINCT event_id) FROM public.claim_log")[0].decode(Int.self, at: 0) == expected.count,
                "each event claimed once")
        #expect(claims.allSatisfy { claim in relays.contains { claim.owner.contains(":\($0.pid):") } }, "claims per owner: \(claims)")
        for relay in relays {
            #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
        }
    }

    /// Logs every claim (a delivery turning 'delivering') with its lease owner in
    /// `public.claim_log`, a table of this test's own.
    private func logClaims(_ sql: Connection) throws {
        try sql.execute("""
            CREATE TABLE public.claim_log (delivery_id bigint NOT NULL, event_id text NOT NULL, owner text);
            CREATE FUNCTION public.log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.claim_log VALUES (NEW.id, NEW.event_id, NEW.lease_owner);
                RETURN NULL;
            END
            $$;
            -- A first attempt is claimed by inserting the delivery leased, a retry by updating it.
            CREATE TRIGGER log_first_claim AFTER INSERT ON outbox.delivery_queue
                FOR EACH ROW WHEN (NEW.status = 'delivering')
                EXECUTE FUNCTION public.log_claim();
            CREATE TRIGGER log_claim AFTER UPDATE OF status ON outbox.delivery_queue
                FOR EACH ROW WHEN (NEW.status = 'delivering' AND OLD.status <> 'delivering')
                EXECUTE FUNCTION public.log_claim();
            """)
    }
}
