import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The admin port (`/healthz`, `/readyz`, `/metrics`) of a relay a test started.
///
/// The relay is started with `OUTBOX_ADMIN_LISTEN=127.0.0.1:0` (``RelayProcess/defaults``)
/// and says which port it got in its `admin port listening` log line; ``of(_:timeout:)``
/// reads it from there, in either log format.
struct AdminPort: Sendable {
    let port: Int

    /// One answer of the admin port.
    struct Answer: Sendable, CustomStringConvertible {
        let status: Int
        let body: String
        var description: String { "\(status) \(body.debugDescription)" }
    }

    /// Waits (polling the log every 50 ms) until `relay` logged where its admin port listens.
    /// Throws after `timeout`, or as soon as the relay has exited.
    static func of(_ relay: RelayProcess, timeout: Duration = .seconds(20)) async throws -> AdminPort {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if let port = port(inLog: relay.log) { return AdminPort(port: port) }
            try relay.requireRunning()
            if ContinuousClock.now >= deadline {
                throw RelayProcessError("relay \(relay.pid) did not log `admin port listening` within \(timeout); its log ends:\n\(relay.logTail())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The port of the first `admin port listening` line, text (`address=127.0.0.1:PORT`)
    /// or JSON (`"address":"127.0.0.1:PORT"`).
    static func port(inLog log: String) -> Int? {
        for line in log.split(separator: "\n") where line.contains("admin port listening") {
            if let match = line.firstMatch(of: /address\W{1,4}[0-9a-fA-F.:\[\]]*?:(\d{1,5})\b/), let port = Int(match.1) {
                return port
            }
        }
        return nil
    }

    /// `GET path` on the admin port, with a 5 s limit; any status is an answer, only a
    /// transport failure throws.
    func get(_ path: String) async throws -> Answer {
        guard let url = URL(string: "http://127.0.0.1:\(port)\(path)") else {
            throw RelayProcessError("\(path) is not a usable admin path")
        }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: 5)
        request.httpMethod = "GET"
        let (data, response) = try await Self.session.data(for: request)
        guard let http = response as? HTTPURLResponse else {
            throw RelayProcessError("GET \(url) got no HTTP response")
        }
        return Answer(status: http.statusCode, body: String(decoding: data, as: UTF8.self))
    }

    /// Scrapes `/metrics` and parses it; throws when it is not 200 or not valid exposition text.
    func metrics() async throws -> PrometheusExposition {
        let answer = try await get("/metrics")
        guard answer.status == 200 else { throw RelayProcessError("GET /metrics answered \(answer)") }
        return try PrometheusExposition(parsing: answer.body)
    }

    /// No cookies, no cache, no proxy: every GET reaches the relay.
    private static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.connectionProxyDictionary = [:]
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        return URLSession(configuration: configuration)
    }()
}

// MARK: - Prometheus text exposition

/// One sample line: `name{label="value",…} value [timestamp]`.
struct PrometheusSample: Sendable, Equatable, CustomStringConvertible {
    let name: String
    let labels: [String: String]
    let value: Double

    var description: String {
        let labelText = labels.keys.sorted().map { "\($0)=\"\(labels[$0]!)\"" }.joined(separator: ",")
        return labelText.isEmpty ? "\(name) \(value)" : "\(name){\(labelText)} \(value)"
    }
}

/// A `/metrics` body parsed as Prometheus text exposition format 0.0.4: `# HELP` and
/// `# TYPE` lines, other comments, and samples. Parsing is strict, so a malformed body
/// fails the test with the line that is wrong.
struct PrometheusExposition: Sendable {
    /// `# TYPE` per metric family.
    private(set) var types: [String: String] = [:]
    /// `# HELP` per metric family (unescaped).
    private(set) var help: [String: String] = [:]
    private(set) var samples: [PrometheusSample] = []

    static let validTypes: Set<String> = ["counter", "gauge", "histogram", "summary", "untyped"]

    init(parsing text: String) throws {
        var seen = Set<String>()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy(\.isWhitespace) { continue }
            func fail(_ why: String) -> PrometheusParseError { PrometheusParseError(line: number, text: String(line), reason: why) }

            if line.hasPrefix("#") {
                let words = line.dropFirst().split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
                guard let keyword = words.first, keyword == "HELP" || keyword == "TYPE" else { continue }  // a plain comment
                guard words.count >= 2, Self.isMetricName(words[1]) else { throw fail("# \(keyword) needs a valid metric name") }
                let family = String(words[1])
                let rest = words.count > 2 ? String(words[2]) : ""
                if keyword == "TYPE" {
                    guard Self.validTypes.contains(rest) else { throw fail("unknown metric type \"\(rest)\"") }
                    guard types[family] == nil else { throw fail("second # TYPE for \(family)") }
                    guard !samples.contains(where: { Self.family(of: $0.name, types: [family: rest]) == family }) else {
                        throw fail("# TYPE for \(family) after its samples")
                    }
                    types[family] = rest
                } else {
                    guard help[family] == nil else { throw fail("second # HELP for \(family)") }
                    help[family] = rest.replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(of: "\\\\", with: "\\")
                }
                continue
            }

            var scanner = SampleScanner(line)
            let sample: PrometheusSample
            do {
                sample = try scanner.sample()
            } catch let error as SampleScanner.Failure {
                throw fail(error.reason)
            }
            let key = sample.name + "|" + sample.labels.keys.sorted().map { "\($0)=\(sample.labels[$0]!)" }.joined(separator: ",")
            guard seen.insert(key).inserted else { throw fail("duplicate sample \(sample)") }
            let family = Self.family(of: sample.name, types: types)
            if types[family] == "histogram" {
                let suffix = sample.name.dropFirst(family.count)
                guard ["_bucket", "_sum", "_count"].contains(suffix) else { throw fail("histogram \(family) has a sample \(sample.name)") }
                if suffix == "_bucket" {
                    guard let le = sample.labels["le"], Self.number(le) != nil else { throw fail("histogram bucket without a numeric le label") }
                }
            }
            samples.append(sample)
        }
    }

    /// Every metric family: the names in `# TYPE` lines and the families of untyped samples.
    var families: Set<String> {
        Set(types.keys).union(samples.map { Self.family(of: $0.name, types: types) })
    }

    /// Samples called `name` whose labels include every pair of `labels`.
    func samples(_ name: String, _ labels: [String: String] = [:]) -> [PrometheusSample] {
        samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
    }

    /// The value of the only sample called `name` whose labels include `labels`; nil when
    /// there is none or more than one.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let found = samples(name, labels)
        return found.count == 1 ? found[0].value : nil
    }

    /// The sum of the samples called `name` whose labels include `labels`.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples(name, labels).reduce(0) { $0 + $1.value }
    }

    /// `name` without a histogram or summary suffix when that names a typed family.
    static func family(of name: String, types: [String: String]) -> String {
        if types[name] != nil { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let type = types[base], type == "histogram" || type == "summary" { return base }
        }
        return name
    }

    static func isMetricName<S: StringProtocol>(_ text: S) -> Bool {
        guard let first = text.unicodeScalars.first, first.isASCIILetter || first == "_" || first == ":" else { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" || $0 == ":" }
    }

    /// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
    static func number<S: StringProtocol>(_ text: S) -> Double? {
        switch text {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default:
            guard text.unicodeScalars.allSatisfy({ $0.isASCIIDigit || "+-.eE".unicodeScalars.contains($0) }) else { return nil }
            return Double(String(text))
        }
    }
}

/// Where a `/metrics` body is not valid exposition text.
struct PrometheusParseError: Error, CustomStringConvertible {
    let line: Int
    let text: String
    let reason: String
    var description: String { "/metrics line \(line): \(reason): \(text.debugDescription)" }
}

/// Reads one sample line left to right.
private struct SampleScanner {
    struct Failure: Error { let reason: String }

    private let scalars: [Unicode.Scalar]
    private var position = 0

    init(_ line: Substring) { scalars = Array(line.unicodeScalars) }

    mutating func sample() throws -> PrometheusSample {
        let name = take { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" || $0 == ":" }
        guard PrometheusExposition.isMetricName(name) else { throw Failure(reason: "no valid metric name") }
        var labels: [String: String] = [:]
        if peek == "{" {
            position += 1
            while true {
                skipSpaces()
                if peek == "}" { position += 1; break }
                let label = take { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
                guard let first = label.unicodeScalars.first, !first.isASCIIDigit else { throw Failure(reason: "no valid label name") }
                skipSpaces()
                guard peek == "=" else { throw Failure(reason: "label \(label) has no =") }
                position += 1
                skipSpaces()
                let value = try quoted()
                guard labels.updateValue(value, forKey: label) == nil else { throw Failure(reason: "label \(label) twice") }
                skipSpaces()
                if peek == "," { position += 1; continue }
                guard peek == "}" else { throw Failure(reason: "labels not closed with }") }
                position += 1
                break
            }
        }
        guard peek == " " || peek == "\t" else { throw Failure(reason: "no space before the value") }
        skipSpaces()
        let valueText = take { $0 != " " && $0 != "\t" }
        guard let value = PrometheusExposition.number(valueText) else { throw Failure(reason: "value \"\(valueText)\" is not a number") }
        skipSpaces()
        if position < scalars.count {
            let timestamp = take { $0 != " " && $0 != "\t" }
            guard Int64(timestamp) != nil else { throw Failure(reason: "timestamp \"\(timestamp)\" is not an integer") }
            skipSpaces()
            guard position == scalars.count else { throw Failure(reason: "text after the timestamp") }
        }
        return PrometheusSample(name: name, labels: labels, value: value)
    }

    private var peek: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

    private mutating func skipSpaces() {
        while let scalar = peek, scalar == " " || scalar == "\t" { position += 1 }
    }

    private mutating func take(while accepts: (Unicode.Scalar) -> Bool) -> String {
        var text = String.UnicodeScalarView()
        while let scalar = peek, accepts(scalar) {
            text.append(scalar)
            position += 1
        }
        return String(text)
    }

    /// A double-quoted label value with `\\`, `\"` and `\n` escapes.
    private mutating func quoted() throws -> String {
        guard peek == "\"" else { throw Failure(reason: "label value not quoted") }
        position += 1
        var text = String.UnicodeScalarView()
        while let scalar = peek {
            position += 1
            switch scalar {
            case "\"": return String(text)
            case "\\":
                guard let escaped = peek else { throw Failure(reason: "label value ends in a backslash") }
                position += 1
                switch escaped {
                case "\\": text.append("\\")
                case "\"": text.append("\"")
                case "n": text.append("\n")
                default: throw Failure(reason: "unknown escape \\\(escaped) in a label value")
                }
            default: text.append(scalar)
            }
        }
        throw Failure(reason: "label value not closed")
    }
}

private extension Unicode.Scalar {
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
