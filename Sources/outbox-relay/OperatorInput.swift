import Foundation
import OutboxOperations
import OutboxRelay
import OutboxSQL

/// Parsers for the operator commands' arguments. Their errors become
/// ArgumentParser's "The value '…' is invalid for '--flag': <reason>".
enum OperatorInput {
    struct InvalidValue: Error, CustomStringConvertible {
        let description: String
    }

    @Sendable static func duration(_ text: String) throws -> Duration {
        try DurationText.parse(text)
    }

    /// A retry schedule: the waits before each retry, e.g. `5s,1m,30m`.
    @Sendable static func durationList(_ text: String) throws -> [Duration] {
        let steps = try DurationText.parseList(text)
        guard !steps.isEmpty else {
            throw InvalidValue(description: "the schedule is empty: give waits such as 5s,1m,30m (or --clear-setting retry-schedule for the default)")
        }
        return steps
    }

    @Sendable static func boolean(_ text: String) throws -> Bool {
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw InvalidValue(description: "\"\(text)\" is not true or false")
        }
    }

    @Sendable static func positiveInteger(_ text: String) throws -> Int {
        guard let value = Int(text), value > 0 else {
            throw InvalidValue(description: "\"\(text)\" is not a positive whole number")
        }
        return value
    }

    @Sendable static func timestamp(_ text: String) throws -> Date {
        guard let date = TimestampText.parse(text) else {
            throw InvalidValue(description: "\"\(text)\" is not \(TimestampText.example)")
        }
        return date
    }

    /// Requests per second, e.g. `10` or `0.5`.
    @Sendable static func rate(_ text: String) throws -> Double {
        guard let value = Double(text), value.isFinite, value > 0 else {
            throw InvalidValue(description: "\"\(text)\" is not a positive number of requests per second")
        }
        return value
    }

    /// `order.created,order.*` (spaces around commas ignored); repeated flags add up.
    static func patterns(_ values: [String]) -> [String] {
        values.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { String($0).trimmingCharacters(in: .whitespaces) }
    }

    /// Whether OUTBOX_ALLOW_PRIVATE_NETWORKS lets the relay reach internal addresses.
    static var allowsPrivateNetworks: Bool {
        guard let text = ProcessInfo.processInfo.environment["OUTBOX_ALLOW_PRIVATE_NETWORKS"] else { return false }
        return (try? boolean(text)) ?? false
    }

    /// A warning when `url` names a literal loopback/private address the relay
    /// would refuse (names are resolved, and checked, only at delivery time).
    static func privateNetworkWarning(for url: String) -> String? {
        guard !allowsPrivateNetworks, var host = URLComponents(string: url)?.host else { return nil }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let address = NetworkAddress(host),
              let refusal = NetworkAddressPolicy(allowPrivateNetworks: false).refusal(for: address)
        else { return nil }
        return "warning: the relay will not deliver to this URL by default: \(refusal)"
    }

    static func warn(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}

/// One `--header name=value`.
struct HeaderArgument: Sendable {
    let name: String
    let value: String

    @Sendable static func parse(_ text: String) throws -> HeaderArgument {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw OperatorInput.InvalidValue(description: "write a header as name=value, e.g. x-tenant=acme")
        }
        return HeaderArgument(name: String(text[..<equals]), value: String(text[text.index(after: equals)...]))
    }

    /// The headers as a JSON object (the schema checks names and values).
    static func json(_ headers: [HeaderArgument]) throws -> PostgresJSON {
        try PostgresJSON(encoding: Dictionary(headers.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }))
    }
}
