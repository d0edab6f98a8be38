import Foundation

/// Timestamps as operators write them: RFC 3339, with or without fractional
/// seconds (`2026-01-31T12:00:00Z`, `2026-01-31T12:00:00.250+01:00`).
public enum TimestampText {
    /// The instant `text` names, or nil when it is not RFC 3339.
    public static func parse(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return plain.date(from: text) ?? fractional.date(from: text)
    }

    /// What to write instead, for an error message.
    public static let example = "an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
}
