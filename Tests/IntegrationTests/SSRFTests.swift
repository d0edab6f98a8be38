import Foundation
import OutboxSQL
import Synchronization
import Testing
import TestSupport

/// The SSRF guard (SPEC §6): with private networks not allowed, a webhook whose URL
/// names or resolves to an internal address is refused before any byte is sent,
/// whatever spelling the URL uses.
@Suite(.timeLimit(.minutes(1)))
struct SSRFTests {
    /// One refused target: its URL and the addresses the refusal may name.
    struct Target: CustomStringConvertible {
        let name: String
        let url: String
        let addresses: [String]
        var description: String { "\(name) \(url)" }
    }

    static func targets(port: Int) -> [Target] {
        [
            Target(name: "loopback", url: "http://127.0.0.1:\(port)/ssrf", addresses: ["127.0.0.1"]),
            Target(name: "loopback-v6", url: "http://[::1]:\(port)/ssrf", addresses: ["::1"]),
            Target(name: "private-10", url: "http://10.0.0.1:\(port)/ssrf", addresses: ["10.0.0.1"]),
            Target(name: "private-172", url: "http://172.16.0.1:\(port)/ssrf", addresses: ["172.16.0.1"]),
            Target(name: "private-192", url: "http://192.168.0.1:\(port)/ssrf", addresses: ["192.168.0.1"]),
            Target(name: "metadata", url: "http://169.254.169.254/latest/meta-data/", addresses: ["169.254.169.254"]),
            Target(name: "cgnat", url: "http://100.64.0.1:\(port)/ssrf", addresses: ["100.64.0.1"]),
            Target(name: "unique-local", url: "http://[fd00::1]:\(port)/ssrf", addresses: ["fd00::1"]),
            Target(name: "mapped-loopback", url: "http://[::ffff:127.0.0.1]:\(port)/ssrf", addresses: ["::ffff:127.0.0.1", "127.0.0.1"]),
            Target(name: "unspecified", url: "http://0.0.0.0:\(port)/ssrf", addresses: ["0.0.0.0"]),
            Target(name: "decimal-loopback", url: "http://2130706433:\(port)/ssrf", addresses: ["127.0.0.1"]),
            Target(name: "hex-loopback", url: "http://0x7f000001:\(port)/ssrf", addresses: ["127.0.0.1"]),
            Target(name: "octal-loopback", url: "http://0177.0.0.1:\(port)/ssrf", addresses: ["127.0.0.1"]),
            Target(name: "localhost", url: "http://localhost:\(port)/ssrf", addresses: ["127.0.0.1", "::1"]),
        ]
    }

    @Test func internalTargetsAreRefusedBeforeConnecting() async throws {
        let listener = try ConnectionRecorder()
        defer { listener.stop() }
        // The listener works: a connection of our own is seen.
        try listener.connectToItself()
        try await listener.waitForConnections(count: 1, timeout: .seconds(5))

        let database = try TestDatabase()
        let sql = try database.connect()
        var created: [Target] = []
        for target in Self.targets(port: listener.port) {
            do {
                try ProcessTestSQL.subscribe(sql, name: target.name, url: target.url)
                created.append(target)
            } catch {
                // Refused at creation is a refusal too, but it must be about the URL.
                #expect("\(error)".contains("url"), "\(target) refused at INSERT for another reason: \(error)")
                print("SSRFTests: \(target) refused at INSERT: \(error)")
            }
        }
        let relay = try RelayProcess(database: database, environment: [
            "OUTBOX_ALLOW_PRIVATE_NETWORKS": "false",
            // A connection that was really tried would take this long on an unroutable address.
            "OUTBOX_TIMEOUT": "10s",
            "OUTBOX_LEASE": "30s",
            // One attempt each.
            "OUTBOX_RETRY_SCHEDULE": "1h",
        ])
        try ProcessTestSQL.publish(sql, count: 1)
        let attempted = try await ProcessTestSQL.waitForDeliveries(sql, where: "attempts >= 1", count: created.count, timeout: .seconds(20))
        try #require(attempted == created.count, "\(attempted) of \(created.count) deliveries attempted; relay log ends:\n\(relay.logTail())")

        let rows = try sql.query("""
            SELECT s.name, a.error, a.status_code, a.duration_ms
            FROM outbox.attempts AS a
            JOIN outbox.deliveries AS d ON d.id = a.delivery_id
            JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
            ORDER BY s.name, a.attempt
            """).rows
        var attempts: [String: [(error: String?, status: Int?, milliseconds: Double)]] = [:]
        for row in rows {
            attempts[try row.decode(String.self, at: 0), default: []].append(
                (try row.decode(String?.self, at: 1), try row.decode(Int?.self, at: 2), try row.decode(Double.self, at: 3)))
        }
        for target in created {
            let tried = attempts[target.name] ?? []
            #expect(tried.count == 1, "\(target): \(tried.count) attempts")
            guard let attempt = tried.first else { continue }
            let error = attempt.error ?? ""
            #expect(error.contains("refused to connect"), "\(target): error \(error.debugDescription)")
            #expect(target.addresses.contains { error.contains("refused to connect to \($0) (") }, "\(target): error names another address: \(error)")
            #expect(error.contains("OUTBOX_ALLOW_PRIVATE_NETWORKS=true"), "\(target): error \(error.debugDescription)")
            #expect(attempt.status == nil, "\(target): got HTTP status \(attempt.status ?? 0)")
            // Refused before connecting, not after a connect timeout.
            #expect(attempt.milliseconds < 1_000, "\(target): the attempt took \(attempt.milliseconds) ms")
        }
        let stillPending = try ProcessTestSQL.deliveries(sql, where: "status = 'pending' AND attempts = 1 AND next_attempt_at > now() + interval '30 minutes'")
        #expect(stillPending == created.count, "each refused delivery waits for its retry in 1h")

        #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
        // Only our own check connection ever reached the listener.
        #expect(listener.connections.count == 1, "the relay connected to the listener: \(listener.connections)")
    }

    /// A proxy named by the environment would hide the real target from the guard: the relay
    /// ignores the ambient proxy variables and connects to the target itself.
    @Test func ambientProxyVariablesAreIgnored() async throws {
        let proxy = try ConnectionRecorder()
        defer { proxy.stop() }
        let database = try TestDatabase()
        let receiver = try TestReceiver()
        let sql = try database.connect()
        let path = "/ok/ambient-proxy"
        try ProcessTestSQL.subscribe(sql, name: "direct", url: receiver.url(path))
        let proxyURL = "http://127.0.0.1:\(proxy.port)"
        let relay = try RelayProcess(database: database, environment: [
            "http_proxy": proxyURL, "HTTP_PROXY": proxyURL, "https_proxy": proxyURL, "HTTPS_PROXY": proxyURL,
            "all_proxy": proxyURL, "ALL_PROXY": proxyURL, "no_proxy": "", "NO_PROXY": "",
        ])
        let expected = try ProcessTestSQL.publish(sql, count: 3)
        let tally = try await waitForDeliveries(of: expected, at: path, on: receiver, relays: [relay], timeout: .seconds(30))
        #expect(tally.missing.isEmpty)
        #expect(proxy.connections.isEmpty, "the relay went through the ambient proxy: \(proxy.connections)")
        #expect(try await relay.terminate(within: .seconds(10)) == .success, "\(relay.logTail())")
    }
}

/// A raw TCP listener on 127.0.0.1 (and on [::1] at the same port when the host has
/// IPv6) that accepts and records every connection and never answers: a stand-in for
/// an internal service the relay must not reach.
final class ConnectionRecorder: Sendable {
    let port: Int
    private let sockets: [Int32]
    /// Peers accepted so far; `stopping` ends the accept thread.
    private let state = Mutex<(peers: [String], stopping: Bool)>(([], false))
    private let finished = DispatchSemaphore(value: 0)

    init() throws {
        let v4 = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard v4 >= 0 else { throw RelayProcessError("socket(AF_INET) failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(v4, generic, length) == 0 && listen(v4, 64) == 0 && getsockname(v4, generic, &length) == 0
            }
        }
        guard bound else {
            close(v4)
            throw RelayProcessError("could not listen on 127.0.0.1: errno \(errno)")
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        var sockets = [v4]
        // [::1] too, best effort: a host without IPv6 cannot be reached there anyway.
        let v6 = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        if v6 >= 0 {
            var only: Int32 = 1
            setsockopt(v6, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &only, socklen_t(MemoryLayout<Int32>.size))
            var address6 = sockaddr_in6()
            address6.sin6_family = sa_family_t(AF_INET6)
            _ = inet_pton(AF_INET6, "::1", &address6.sin6_addr)
            address6.sin6_port = UInt16(port).bigEndian
            let bound6 = withUnsafePointer(to: &address6) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(v6, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 && listen(v6, 64) == 0
                }
            }
            if bound6 { sockets.append(v6) } else { close(v6) }
        }
        self.port = port
        self.sockets = sockets
        let thread = Thread { [self] in acceptUntilStopped() }
        thread.name = "ssrf-connection-recorder"
        thread.start()
    }

    deinit {
        stop()
    }

    /// The peers of every accepted connection, e.g. `127.0.0.1:51234`.
    var connections: [String] { state.withLock { $0.peers } }

    /// Ends the accept thread (within ~100 ms) and closes the sockets; safe to call twice.
    func stop() {
        let first = state.withLock { state -> Bool in
            defer { state.stopping = true }
            return !state.stopping
        }
        guard first else { return }
        _ = finished.wait(timeout: .now() + 2)
        for socket in sockets { close(socket) }
    }

    /// Opens (and closes) one connection to 127.0.0.1:``port``, to prove the recorder sees connections.
    func connectToItself() throws {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard client >= 0 else { throw RelayProcessError("socket failed: errno \(errno)") }
        defer { close(client) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { throw RelayProcessError("could not connect to the recorder on port \(port): errno \(errno)") }
    }

    /// Polls every 20 ms until `count` connections were accepted; throws after `timeout`.
    func waitForConnections(count: Int, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while connections.count < count {
            if ContinuousClock.now >= deadline {
                throw RelayProcessError("the recorder saw \(connections.count) of \(count) connections within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Runs on its own thread: poll() with a short timeout, so `stop` is noticed.
    private func acceptUntilStopped() {
        defer { finished.signal() }
        var descriptors = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while !state.withLock({ $0.stopping }) {
            guard poll(&descriptors, nfds_t(descriptors.count), 100) > 0 else { continue }
            for index in descriptors.indices where descriptors[index].revents & Int16(POLLIN) != 0 {
                var peer = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let accepted = withUnsafeMutablePointer(to: &peer) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(descriptors[index].fd, $0, &length) }
                }
                guard accepted >= 0 else { continue }
                let name = Self.describe(peer)
                state.withLock { $0.peers.append(name) }
                close(accepted)
            }
        }
    }

    private static func describe(_ storage: sockaddr_storage) -> String {
        var storage = storage
        var host = [CChar](repeating: 0, count: 1025)  // NI_MAXHOST
        var service = [CChar](repeating: 0, count: 32)  // NI_MAXSERV
        let status = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(MemoryLayout<sockaddr_storage>.size), &host, socklen_t(host.count),
                            &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard status == 0 else { return "unknown peer" }
        func text(_ characters: [CChar]) -> String {
            String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return text(host) + ":" + text(service)
    }
}
