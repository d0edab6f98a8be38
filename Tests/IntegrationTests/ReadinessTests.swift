import Foundation
import OutboxRelay
import OutboxSQL
import Testing
import TestSupport

/// `/readyz` follows the database (SPEC §7): 503 with a reason while PostgreSQL is
/// down, 200 again when it is back, without restarting the relay; `/healthz` stays
/// 200 throughout. The relay gets a PostgreSQL server of its own, since the test
/// stops it.
@Suite(.timeLimit(.minutes(2)))
struct ReadinessTests {
    @Test func readyzFollowsTheDatabaseWhileHealthzStaysUp() async throws {
        try await DedicatedPostgres.with { server in
            try OutboxSchema.migrator.migrate(on: try Connection(ConnectionTarget(server.conninfo)))
            let receiver = try TestReceiver()
            let path = "/ok/readiness"
            try server.connect().query("SELECT outbox.subscribe('readiness', $1, ARRAY['order.*'])", [receiver.url(path)])

            // `database` only satisfies RelayProcess; OUTBOX_DATABASE_URL points the relay at `server`.
            let unused = try TestDatabase(migrated: false)
            let relay = try RelayProcess(database: unused, environment: ["OUTBOX_DATABASE_URL": server.url])
            let admin = try await AdminPort.of(relay)
            let ready = try await Self.poll(admin, relay, until: "/readyz answers 200", timeout: .seconds(20)) { $0.readyz.status == 200 }
            #expect(ready.readyz.body.hasPrefix("ready"), "\(ready.readyz)")
            #expect(ready.healthz.status == 200, "\(ready.healthz)")
            try await Self.expectDelivery(server: server, receiver: receiver, path: path, relay: relay)

            try await server.pause()
            // The relay re-checks every 2 s.
            let down = try await Self.poll(admin, relay, until: "/readyz answers 503", timeout: .seconds(15)) { $0.readyz.status == 503 }
            #expect(down.readyz.body.hasPrefix("not ready: "), "\(down.readyz)")
            #expect(down.readyz.body.contains("database"), "the 503 says why: \(down.readyz)")
            // Down for a while, not only at the first failed check.
            let whileDown = try await Self.observe(admin, relay, for: .seconds(4))
            #expect(whileDown.allSatisfy { $0.readyz.status == 503 }, "/readyz while PostgreSQL is down: \(whileDown.map(\.readyz))")

            try await server.resume()
            let back = try await Self.poll(admin, relay, until: "/readyz answers 200 again", timeout: .seconds(30)) { $0.readyz.status == 200 }
            #expect(back.healthz.status == 200, "\(back.healthz)")
            try await Self.expectDelivery(server: server, receiver: receiver, path: path, relay: relay)

            // Every /healthz answer in the polls above was 200 (checked in `poll`).
            #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
        }
    }

    /// What the two probes answered at one moment.
    struct Probes {
        let readyz: AdminPort.Answer
        let healthz: AdminPort.Answer
    }

    /// Asks `/readyz` and `/healthz` every 200 ms until `condition` holds; expects every
    /// `/healthz` answer on the way to be 200. Throws after `timeout`, or when the relay exited.
    private static func poll(
        _ admin: AdminPort, _ relay: RelayProcess, until what: String, timeout: Duration, _ condition: (Probes) -> Bool
    ) async throws -> Probes {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let probes = try await probe(admin, relay, while: what)
            if condition(probes) { return probes }
            if ContinuousClock.now >= deadline {
                throw RelayProcessError("\(what): not within \(timeout); last /readyz \(probes.readyz); relay log ends:\n\(relay.logTail())")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Asks both probes every 200 ms for `duration`; returns every answer.
    private static func observe(_ admin: AdminPort, _ relay: RelayProcess, for duration: Duration) async throws -> [Probes] {
        let end = ContinuousClock.now.advanced(by: duration)
        var seen: [Probes] = []
        while ContinuousClock.now < end {
            seen.append(try await probe(admin, relay, while: "observing for \(duration)"))
            try await Task.sleep(for: .milliseconds(200))
        }
        return seen
    }

    /// One `/readyz` and one `/healthz`; the relay must still be the same running process.
    private static func probe(_ admin: AdminPort, _ relay: RelayProcess, while what: String) async throws -> Probes {
        try relay.requireRunning()
        let probes = Probes(readyz: try await admin.get("/readyz"), healthz: try await admin.get("/healthz"))
        #expect(probes.healthz.status == 200, "/healthz while \(what): \(probes.healthz)")
        return probes
    }

    /// Publishes one event on `server` and waits until it reaches `path`: the relay works.
    private static func expectDelivery(server: DedicatedPostgres, receiver: TestReceiver, path: String, relay: RelayProcess) async throws {
        let eventID = try server.connect().query("SELECT outbox.publish('order.created', '{}'::jsonb)")[0].decode(String.self, at: 0)
        _ = try await waitForDeliveries(of: [eventID], at: path, on: receiver, relays: [relay], timeout: .seconds(20))
    }
}

/// A PostgreSQL server of the test's own, made by `scripts/dev-postgres start`, that the
/// test may stop and start (``pause()``, ``resume()``) without touching the shared one.
struct DedicatedPostgres: Sendable {
    /// The server's directory (data/, socket/, server.log, port).
    let directory: String
    let port: Int
    /// `postgresql://postgres@127.0.0.1:PORT/outbox`.
    var url: String { "postgresql://postgres@127.0.0.1:\(port)/outbox" }
    var conninfo: String { "host=127.0.0.1 port=\(port) user=postgres dbname=outbox" }

    /// Where pg_ctl is: `PG_BINDIR` as for dev-postgres, else PostgreSQL 15's place on Debian.
    static let binDirectory = ProcessInfo.processInfo.environment["PG_BINDIR"] ?? "/usr/lib/postgresql/15/bin"

    /// Starts a server, runs `body` with it, and stops and deletes it afterwards
    /// whatever happened.
    static func with(_ body: (DedicatedPostgres) async throws -> Void) async throws {
        let server = try await start()
        do {
            try await body(server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    static func start() async throws -> DedicatedPostgres {
        let run = try await ToolRun.run(["/bin/bash", script, "start"], environment: ["OUTBOX_DEV_PG_FAST": "1"], timeout: .seconds(60))
        var exports: [String: String] = [:]
        for line in run.output.split(separator: "\n") where line.hasPrefix("export ") {
            let assignment = line.dropFirst("export ".count)
            if let equals = assignment.firstIndex(of: "=") {
                exports[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
            }
        }
        let server = exports["OUTBOX_DEV_PG_DIR"].map { DedicatedPostgres(directory: $0, port: exports["PGPORT"].flatMap(Int.init) ?? 0) }
        guard run.succeeded, let server, server.port > 0 else {
            await server?.stop()
            throw RelayProcessError("scripts/dev-postgres start failed (status \(run.status)\(run.timedOut ? ", timed out" : "")):\n\(run.output)")
        }
        return server
    }

    func connect() throws -> Connection {
        try Connection(ConnectionTarget(conninfo))
    }

    /// Stops the server (fast shutdown: sessions are ended) and waits until it is down.
    func pause() async throws {
        try await pgCtl(["--pgdata=\(directory)/data", "--mode=fast", "--wait", "--timeout=20", "stop"])
    }

    /// Starts the stopped server again on the same port and waits until it accepts connections.
    func resume() async throws {
        try await pgCtl([
            "--pgdata=\(directory)/data", "--log=\(directory)/server.log", "--options=-c port=\(port)",
            "--wait", "--timeout=20", "start",
        ])
    }

    /// `scripts/dev-postgres stop DIR`: stops the server and deletes its directory.
    func stop() async {
        // Never without a directory: the script would then stop the shared test server.
        guard !directory.isEmpty, directory != ProcessInfo.processInfo.environment["OUTBOX_DEV_PG_DIR"] else { return }
        do {
            let run = try await ToolRun.run(["/bin/bash", Self.script, "stop", directory], timeout: .seconds(60))
            if !run.succeeded { Issue.record("scripts/dev-postgres stop \(directory) failed: \(run.output)") }
        } catch {
            Issue.record("scripts/dev-postgres stop \(directory): \(error)")
        }
    }

    /// Runs pg_ctl as the server's owner (`postgres` when we are root, as dev-postgres
    /// does), from /tmp, which that user may enter.
    private func pgCtl(_ arguments: [String]) async throws {
        let pgCtl = "\(Self.binDirectory)/pg_ctl"
        let command = getuid() == 0 ? ["runuser", "-u", "postgres", "--", pgCtl] + arguments : [pgCtl] + arguments
        let run = try await ToolRun.run(["/bin/bash", "-c", "cd /tmp && exec \"$@\"", "pg_ctl"] + command, timeout: .seconds(60))
        guard run.succeeded else {
            let log = (try? String(contentsOfFile: "\(directory)/server.log", encoding: .utf8)) ?? ""
            throw RelayProcessError("pg_ctl \(arguments.last ?? "") failed (status \(run.status)): \(run.output)\nserver log ends:\n\(log.suffix(2000))")
        }
    }

    private static var script: String { RelayBinary.packageRoot.appendingPathComponent("scripts/dev-postgres").path }
}

/// A command run to completion by the readiness test's server steps.
///
