/// Durations as operators write them: `250ms`, `5s`, `5m`, `2h`, `7d`
/// (a plain number means seconds).
public enum DurationText {
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static func parse(_ text: String) throws -> Duration {
        let trimmed = text.trimmingSpaces
        let units: [(suffix: String, milliseconds: Double)] = [
            ("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
        ]
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            let number = trimmed.dropLast(unit.suffix.count)
            // "5ms" also ends in "s"; the longer suffix is tried first.
            guard let value = Double(number), value.isFinite else { continue }
            return try duration(milliseconds: value * unit.milliseconds, text: text)
        }
        if let seconds = Double(trimmed), seconds.isFinite {
            return try duration(milliseconds: seconds * 1_000, text: text)
        }
        throw ParseError(description: "\"\(text)\" is not a duration: write e.g. 250ms, 5s, 5m, 2h or 7d")
    }

    /// A comma-separated list, e.g. a retry schedule `5s,5m,30m`.
    public static func parseList(_ text: String) throws -> [Duration] {
        guard !text.trimmingSpaces.isEmpty else { return [] }
        return try text.split(separator: ",", omittingEmptySubsequences: false).map { try parse(String($0)) }
    }

    /// The shortest exact form: `250ms`, `5s`, `5m`, `2h`, `7d`.
    public static func format(_ duration: Duration) -> String {
        let milliseconds = duration.milliseconds
        for (suffix, size) in [("d", 86_400_000.0), ("h", 3_600_000.0), ("m", 60_000.0), ("s", 1_000.0)]
        where milliseconds >= size && milliseconds.truncatingRemainder(dividingBy: size) == 0 {
            return "\(Int64(milliseconds / size))\(suffix)"
        }
        return milliseconds == milliseconds.rounded() ? "\(Int64(milliseconds))ms" : "\(milliseconds)ms"
    }

    private static func duration(milliseconds: Double, text: String) throws -> Duration {
        guard milliseconds >= 0 else {
            throw ParseError(description: "\"\(text)\" is negative: durations must be zero or more")
        }
        return .microseconds(Int64(milliseconds * 1_000))
    }
}

extension Duration {
    /// The duration in (fractional) milliseconds.
    public var milliseconds: Double {
        Double(components.seconds) * 1_000 + Double(components.attoseconds) / 1e15
    }

    /// The duration in (fractional) seconds.
    public var seconds: Double { milliseconds / 1_000 }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
