import Foundation
import Testing
import TestSupport

@testable import OutboxRelay

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The engine against real HTTP/1.1 receivers on 127.0.0.1 (scripts/testing/engine_test_server.py).
@Suite(.timeLimit(.minutes(1)))
struct HTTPDeliveryEngineTests {
    static let userAgent = "outbox-relay-tests/1.0"

    @Test func successKeepsOnlyTheExcerptOfALargeBody() async throws {
        let server = try EngineTestServer()
        defer { server.stop() }
        let harness = try EngineHarness(responseExcerptBytes: 1024)
        defer { _ = harness.engine.shutdown() }

        harness.engine.submit([
            server.request(tag: 1, path: "/bytes/100000"),
            server.request(tag: 2, path: "/bytes/10"),
        ])
        let responses = try await harness.responses(count: 2)

        let large = try #require(responses[1])
        #expect(large.statusCode == 200)
        #expect(large.error == nil)
        #expect(large.bodyExcerpt == Array(repeating: UInt8(ascii: "x"), count: 1024))
        let small = try #require(responses[2])
        #expect(small.statusCode == 200)
        #expect(small.bodyExcerpt == Array(repeating: UInt8(ascii: "x"), count: 10))
        #expect(harness.engine.inFlight == 0)
    }

    @Test func sendsTheCallersHeadersAndBodyWithTheConfiguredUserAgent() async throws {
        let server = try EngineTestServer()
        defer { server.stop() }
        let harness = try EngineHarness(responseExcerptBytes: 4096)
        defer { _ = harness.engine.shutdown() }

        var request = server.request(tag: 7, path: "/echo", body: #"{"hello":"world"}"#)
        request.headers = [
            HTTPHeader(name: "content-type", value: "application/json"),
            HTTPHeader(name: "webhook-id", value: "msg_1"),
            HTTPHeader(name: "User-Agent", value: "someone-else"),
        ]
        harness.engine.submit([request])
        let response = try #require(try await harness.responses(count: 1)[7])

        #expect(response.statusCode == 200)
        let echo = try Echo(response.bodyExcerpt)
        #expect(echo.body == #"{"hello":"world"}"#)
        #expect(echo.headers["content-type"] == "application/json")
        #expect(echo.headers["webhook-id"] == "msg_1")
        #expect(echo.headers["user-agent"] == Self.userAgent)
        #expect(echo.headers["expect"] == nil)
        #expect(response.duration > .zero)
        #expect(abs(response.startedAt.timeIntervalSinceNow) < 60)
    }

    @Test func redirectsAreNotFollowed() async throws {
        let server = try EngineTestServer()
        defer { server.stop() }
        let harness = try EngineHarness()
        defer { _ = harness.engine.shutdown() }

        harness.engine.submit([server.request(tag: 1, path: "/redirect")])
        let redirect = try #require(try await harness.responses(count: 1)[1])
        #expect(redirect.statusCode == 302)
        #expect(redirect.error == nil)

        harness.engine.submit([server.request(tag: 2, path: "/hits/target")])
        let hits = try #require(try await harness.responses(count: 1)[2])
        #expect(String(decoding: hits.bodyExcerpt, as: UTF8.self) == "0")
    }

    @Test func aSilentServerTimesOut() async throws {
        let server = try EngineTestServer()
        defer { server.stop() }
        let harness = try EngineHarness()
        defer { _ = harness.engine.shutdown() }

        harness.engine.submit([server.request(tag: 1, path: "/never", timeout: .milliseconds(300))])
        let response = try #require(try await harness.responses(count: 1)[1])

        #expect(response.statusCode == nil)
        #expect(response.error == "timed out after 300ms")
        // libcurl's timer has millisecond granularity and its own clock: allow it to fire a hair early.
        #expect(response.duration >= .milliseconds(290))
        #expect(response.duration < .seconds(30))
    }

    @Test func aClosedPortIsConnectionRefused() async throws {
        let port = try closedLoopbackPort()
        let harness = try EngineHarness()
        defer { _ = harness.engine.shutdown() }

        harness.engine.submit([
            WebhookRequest(tag: 1, url: "http://127.0.0.1:\(port)/", headers: [], body: [], timeout: .seconds(10))
        ])
        let response = try #require(try await harness.responses(count: 1)[1])

        #expect(response.statusCode == nil)
        #expect(response.error?.hasPrefix("connection refused") == true)
    }

    @Test func retryAfterIsCaptured() async throws {
        let server = try EngineTestServer()
        defer { server.stop() }
        let harness = try EngineHarness()
        defer { _ = harness.engine.shutdown() }

        harness.engine.submit([server.request(tag: 1, path: "/retry-after"), server.request(tag: 2, path: "/target")])
        let responses = try await harness.responses(count: 2)

        #expect(responses[1]?.statusCode == 503)
        #expect(responses[1]?.retryAfter == "120")
        #expect(responses[1]?.error == nil)
        #expect(responses[2]?.statusCode == 200)
        #expect(responses[2]?.retryAfter == nil)
    }

    @Test func requestsThatCannotBeSentAreReportedNotSent() async throws {
        let server = try EngineTestServer()
        defer { server.stop() }
        let harness = try EngineHarness()
        defer { _ = harness.engine.shutdown() }

        var injected = server.request(tag: 2, path: "/target")
        injected.headers = [HTTPHeader(name: "x-note", value: "a\r\nx-injected: yes")]
        harness.engine.submit([
            WebhookRequest(tag: 1, url: "ftp://127.0.0.1/file", headers: [], body: [], timeout: .seconds(5)),
            injected,
        ])
        let responses = try await harness.responses(count: 2)

        #expect(responses[1]?.statusCode == nil)
        #expect(responses[1]?.error?.contains("unsupported URL scheme") == true)
        #expect(responses[2]?.statusCode == nil)
        #expect(responses[2]?.error?.contains("line break") == true)
    }

    @Test func twoHundredConcurrentRequestsAllArriveIntact() async throws {
        let server = try EngineTestServer()
        defer { server.stop() }
        let harness = try EngineHarness(responseExcerptBytes: 4096)
        defer { _ = harness.engine.shutdown() }

        let requests = (0..<200).map { index in
            var request = server.request(tag: Int64(index), path: "/echo", body: "body-\(index)")
            request.headers = [HTTPHeader(name: "x-index", value: "\(index)")]
            return request
        }
        harness.engine.submit(Array(requests[..<100]))
        harness.engine.submit(Array(requests[100...]))
        let responses = try await harness.responses(count: 200)

        #expect(responses.count == 200)
        for index in 0..<200 {
            let response = try #require(responses[Int64(index)])
            #expect(response.statusCode == 200, "request \(index): \(response.error ?? "")")
            let echo = try Echo(response.bodyExcerpt)
            #expect(echo.body == "body-\(index)")
            #expect(echo.headers["x-index"] == "\(index)")
        }
        #expect(harness.engine.inFlight == 0)
    }

    @Test func shutdownReturnsTheTagsStillRunning() async throws {
        let server = try EngineTestServer()
        defer { server.stop() }
        let harness = try EngineHarness()

        // Both start in the same loop turn, so once the quick one is back the slow one is running.
        harness.engine.submit([
            server.request(tag: 1, path: "/never", timeout: .seconds(60)),
            server.request(tag: 2, path: "/target"),
        ])
        let quick = try await harness.responses(count: 1)
        #expect(quick[2]?.statusCode == 200)
        #expect(harness.engine.inFlight == 1)

        #expect(harness.engine.shutdown() == [1])
        #expect(harness.engine.inFlight == 0)
        #expect(harness.engine.shutdown() == [])
        #expect(await harness.reportedAfterShutdown().isEmpty)
    }

    @Test func tlsIsVerified() async throws {
        let certificate = try SelfSignedCertificate()
        let server = try EngineTestServer(tls: (certificate.certificatePath, certificate.keyPath))
        defer { server.stop() }

        let untrusting = try EngineHarness()
        defer { _ = untrusting.engine.shutdown() }
        untrusting.engine.submit([server.request(tag: 1, path: "/bytes/2")])
        let refused = try #require(try await untrusting.responses(count: 1)[1])
        #expect(refused.statusCode == nil)
        #expect(refused.error?.hasPrefix("TLS: ") == true, "\(refused.error ?? "no error")")

        let trusting = try EngineHarness(caBundlePath: certificate.certificatePath)
        defer { _ = trusting.engine.shutdown() }
        trusting.engine.submit([server.request(tag: 2, path: "/bytes/2")])
        let accepted = try #require(try await trusting.responses(count: 1)[2])
        #expect(accepted.statusCode == 200)
        #expect(accepted.error == nil)
    }

    @Test func shutdownBeforeStartReturnsTheQueuedTags() throws {
        let engine = try HTTPDeliveryEngine(configuration: .init(userAgent: Self.userAgent)) { _ in }
        engine.submit([WebhookRequest(tag: 5, url: "http://127.0.0.1:1/", headers: [], body: [], timeout: .seconds(1))])
        #expect(engine.inFlight == 1)
        #expect(engine.shutdown() == [5])
        #expect(throws: HTTPDeliveryEngineError.self) { try engine.start() }
    }
}

/// An engine whose responses arrive on an `AsyncStream`.
private struct EngineHarness {
    let engine: HTTPDeliveryEngine
    private let stream: AsyncStream<WebhookResponse>
    private let continuation: AsyncStream<WebhookResponse>.Continuation

    init(responseExcerptBytes: Int = 1024, allowPrivateNetworks: Bool = true, caBundlePath: String? = nil) throws {
        let (stream, continuation) = AsyncStream.makeStream(of: WebhookResponse.self)
        self.stream = stream
        self.continuation = continuation
        engine = try HTTPDeliveryEngine(
            configuration: .init(
                userAgent: HTTPDeliveryEngineTests.userAgent, responseExcerptBytes: responseExcerptBytes,
                caBundlePath: caBundlePath, allowPrivateNetworks: allowPrivateNetworks)
        ) { batch in
            for response in batch { continuation.yield(response) }
        }
        try engine.start()
    }

    /// The next `count` responses, by tag.
    func responses(count: Int) async throws -> [Int64: WebhookResponse] {
        var byTag: [Int64: WebhookResponse] = [:]
        for await response in stream {
            byTag[response.tag] = response
            if byTag.count == count { break }
        }
        return byTag
    }

    /// Whatever was reported and not yet read; call after `shutdown()`.
    func reportedAfterShutdown() async -> [WebhookResponse] {
        continuation.finish()
        var rest: [WebhookResponse] = []
        for await response in stream { rest.append(response) }
        return rest
    }
}

/// The JSON the receiver's /echo route answers with.
private struct Echo: Decodable {
    var headers: [String: String]
    var body: String

    init(_ bytes: [UInt8]) throws {
        self = try JSONDecoder().decode(Echo.self, from: Data(bytes))
    }
}

/// A receiver process, started for one test and stopped by its PID.
private final class EngineTestServer {
    private let process = Process()
    let port: Int

    private let scheme: String

    /// `tls` serves HTTPS with that certificate and key (PEM files).
    init(tls: (certificate: String, key: String)? = nil) throws {
        scheme = tls == nil ? "http" : "https"
        let script = repositoryRoot.appendingPathComponent("scripts/testing/engine_test_server.py")
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path] + (tls.map { ["--tls", $0.certificate, $0.key] } ?? [])
        process.standardOutput = output
        try process.run()

        var printed = Data()
        while !printed.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // the process ended without printing its port
            printed.append(chunk)
        }
        let line = String(decoding: printed, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let port = Int(line) else {
            process.terminate()
            throw TestServerError(message: "engine_test_server.py did not print its port (printed \"\(line)\")")
        }
        self.port = port
    }

    func request(tag: Int64, path: String, body: String = "{}", timeout: Duration = .seconds(10)) -> WebhookRequest {
        WebhookRequest(
            tag: tag, url: "\(scheme)://127.0.0.1:\(port)\(path)",
            headers: [HTTPHeader(name: "content-type", value: "application/json")],
            body: Array(body.utf8), timeout: timeout
        )
    }

    func stop() {
        kill(process.processIdentifier, SIGTERM)
        if ChildProcessExit.wait(for: process, timeout: .seconds(5)) == nil {
            kill(process.processIdentifier, SIGKILL)
            _ = ChildProcessExit.wait(for: process)
        }
    }
}

private struct TestServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A loopback port that was bound and then closed, so nothing listens on it.
private func closedLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw TestServerError(message: "socket() failed: errno \(errno)") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
            bind(descriptor, socketAddress, length) == 0 && getsockname(descriptor, socketAddress, &length) == 0
        }
    }
    guard bound else { throw TestServerError(message: "bind() to 127.0.0.1:0 failed: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A certificate for 127.0.0.1 made with the openssl command, in a temporary directory.
private final class SelfSignedCertificate {
    let directory: URL
    var certificatePath: String { directory.appendingPathComponent("cert.pem").path }
    var keyPath: String { directory.appendingPathComponent("key.pem").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "\(directory.path)/key.pem", "-out", "\(directory.path)/cert.pem",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else {
            throw TestServerError(message: "openssl could not make a test certificate (exit \(openssl.terminationStatus))")
        }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}
