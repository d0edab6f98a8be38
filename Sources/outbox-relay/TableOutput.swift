import ArgumentParser
import Foundation
import OutboxRelay

/// One value of a command's output: a table cell for people, a JSON value for scripts.
indirect enum OutputValue: Encodable {
    case text(String)
    case integer(Int64)
    case number(Double)
    case boolean(Bool)
    case list([String])
    case object([String: String])
    /// A span of time in seconds: a number in JSON, `3m 12s` in a table.
    case seconds(Double)
    case record(OutputRecord)
    case records([OutputRecord])
    case null
    /// JSON null, shown in a table as `shown` (e.g. "default" for an unset setting).
    case absent(shown: String)

    init(_ text: String?) { self = text.map(OutputValue.text) ?? .null }

    init(_ integer: Int64?) { self = integer.map(OutputValue.integer) ?? .null }

    /// RFC 3339 in UTC, e.g. `2026-01-02T03:04:05Z`.
    static func timestamp(_ date: Date?) -> OutputValue {
        guard let date else { return .null }
        return .text(date.formatted(.iso8601))
    }

    /// A setting: its duration text (`5s`), or "default" when unset.
    static func setting(_ duration: Duration?) -> OutputValue {
        duration.map { .text(DurationText.format($0)) } ?? .absent(shown: "default")
    }

    /// Ages rounded to the millisecond; nil when there is nothing to age.
    static func age(_ seconds: Double?) -> OutputValue {
        seconds.map { .seconds(($0 * 1000).rounded() / 1000) } ?? .null
    }

    /// The value as a table cell: one line, at most `width` characters.
    func cell(width: Int = 72) -> String {
        let text: String
        switch self {
        case .text(let value): text = value
        case .integer(let value): text = String(value)
        case .number(let value): text = value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .boolean(let value): text = value ? "yes" : "no"
        case .list(let values): text = values.joined(separator: ",")
        case .object(let values): text = values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        case .seconds(let value): text = Self.humanAge(value)
        case .record, .records: text = "…"
        case .null: text = "-"
        case .absent(let shown): text = shown
        }
        // Error texts and response excerpts may hold line breaks or terminal controls.
        let oneLine = String(String.UnicodeScalarView(text.unicodeScalars.map {
            $0.properties.generalCategory == .control ? " " : $0
        }))
        return oneLine.count > width ? String(oneLine.prefix(width - 1)) + "…" : oneLine
    }

    /// `850ms`, `45s`, `3m 12s`, `2h 5m`, `3d 4h`.
    static func humanAge(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        let total = Int64(seconds)
        let (days, hours, minutes, rest) = (total / 86_400, total % 86_400 / 3600, total % 3600 / 60, total % 60)
        if days > 0 { return hours > 0 ? "\(days)d \(hours)h" : "\(days)d" }
        if hours > 0 { return minutes > 0 ? "\(hours)h \(minutes)m" : "\(hours)h" }
        if minutes > 0 { return rest > 0 ? "\(minutes)m \(rest)s" : "\(minutes)m" }
        return "\(rest)s"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value), .seconds(let value): try container.encode(value)
        case .boolean(let value): try container.encode(value)
        case .list(let values): try container.encode(values)
        case .object(let values): try container.encode(values)
        case .record(let record): try container.encode(record)
        case .records(let records): try container.encode(records)
        case .null, .absent: try container.encodeNil()
        }
    }
}

/// Named values in order: a table row, or a JSON object with snake_case keys.
struct OutputRecord: Encodable {
    struct Field {
        let key: String
        let value: OutputValue
    }

    private(set) var fields: [Field]

    init(_ fields: KeyValuePairs<String, OutputValue>) {
        self.fields = fields.map { Field(key: $0.key, value: $0.value) }
    }

    subscript(key: String) -> OutputValue? {
        fields.first { $0.key == key }?.value
    }

    mutating func append(_ other: OutputRecord) {
        fields += other.fields
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        for field in fields {
            try container.encode(field.value, forKey: Key(stringValue: field.key))
        }
    }
}

/// `--json` (or OUTBOX_JSON=true): print JSON for scripts instead of tables.
struct OutputOptions: ParsableArguments {
    @Flag(name: .customLong("json"), help: "Print JSON for scripts instead of a table (env OUTBOX_JSON=true).")
    var jsonFlag = false

    func validate() throws {
        _ = try isJSON
    }

    var isJSON: Bool {
        get throws {
            if jsonFlag { return true }
            return try EnvironmentSetting.parse(nil, "OUTBOX_JSON", option: "json", OperatorInput.boolean) ?? false
        }
    }
}

/// Prints command output: aligned tables and `key: value` listings for people,
/// pretty JSON with sorted keys for scripts (stable from run to run).
enum TableOutput {
    /// A header line of the columns' names in capitals, then one aligned line per record.
    static func table(_ records: [OutputRecord], columns: [String], whenEmpty: String) -> String {
        guard !records.isEmpty else { return whenEmpty }
        // `oldest_pending_age_seconds` is shown as `3m 12s`: its header drops the unit.
        let header = columns.map { column in
            (column.hasSuffix("_seconds") ? String(column.dropLast("_seconds".count)) : column)
                .replacingOccurrences(of: "_", with: " ").uppercased()
        }
        let rows = records.map { record in columns.map { record[$0]?.cell() ?? "-" } }
        let widths = columns.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        return ([header] + rows).map { cells in
            cells.enumerated().map { column, cell in
                column == cells.count - 1 ? cell : cell.padded(to: widths[column])
            }.joined(separator: "  ").trimmingTrailingSpaces
        }.joined(separator: "\n")
    }

    /// One record as aligned `key: value` lines, for a single object.
    static func fields(_ record: OutputRecord) -> String {
        let width = (record.fields.map(\.key.count).max() ?? 0) + 1
        return record.fields.map { field in
            "\(field.key):".padded(to: width) + "  " + field.value.cell(width: 200)
        }.joined(separator: "\n")
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Prints `records` as JSON (an array) or as a table of `columns`.
    static func print(_ records: [OutputRecord], columns: [String], whenEmpty: String, json: Bool) throws {
        Swift.print(json ? try Self.json(records) : table(records, columns: columns, whenEmpty: whenEmpty))
    }

    /// Prints one record as a JSON object or as a one-row table.
    static func printRow(_ record: OutputRecord, json: Bool) throws {
        Swift.print(json ? try Self.json(record) : table([record], columns: record.fields.map(\.key), whenEmpty: ""))
    }

    /// Prints one record as a JSON object or as `key: value` lines.
    static func print(_ record: OutputRecord, json: Bool) throws {
        Swift.print(json ? try Self.json(record) : fields(record))
    }
}

extension String {
    /// Pads with spaces to `width` characters (grapheme clusters, as people count them).
    fileprivate func padded(to width: Int) -> String {
        self + String(repeating: " ", count: max(0, width - count))
    }

    fileprivate var trimmingTrailingSpaces: String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
