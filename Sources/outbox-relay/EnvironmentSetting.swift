import ArgumentParser
import Foundation

/// A flag's value, else its `OUTBOX_…` environment variable's, parsed with a
/// message that names where the bad value came from.
enum EnvironmentSetting {
    static func value(_ flag: String?, _ variable: String) -> String? {
        if let flag { return flag }
        guard let text = ProcessInfo.processInfo.environment[variable], !text.isEmpty else { return nil }
        return text
    }

    static func parse<T>(_ flag: String?, _ variable: String, option: String, _ parse: (String) throws -> T) throws -> T? {
        guard let text = value(flag, variable) else { return nil }
        do {
            return try parse(text)
        } catch {
            let source = flag != nil ? "--\(option)" : variable
            throw ValidationError("\(source): \(error)")
        }
    }
}
