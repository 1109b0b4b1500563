import ForkliftJSON
import TOMLKit

/// Renders TOML values as text: for error messages, for the flattened plugin settings, and
/// as JSON for `settings_json`.
enum ValueText {
    /// A value as a plugin setting: strings raw, everything else as TOML/JSON would write it.
    static func setting(_ value: TOMLValueConvertible) -> String {
        if let string = value.string { return string }
        return toml(value)
    }

    /// A short rendering for error messages.
    static func toml(_ value: TOMLValueConvertible) -> String {
        switch value.type {
        case .string: return json(value)
        case .table, .array: return json(value)
        default: return scalar(value)
        }
    }

    static func json(_ value: TOMLValueConvertible) -> String {
        switch value.type {
        case .string:
            return quoted(value.string ?? "")
        case .array:
            let items = value.array.map { array in array.map { json($0) } } ?? []
            return "[" + items.joined(separator: ",") + "]"
        case .table:
            guard let table = value.table else { return "{}" }
            return jsonObject(table)
        case .date, .time, .dateTime:
            return quoted(scalar(value))
        default:
            return scalar(value)
        }
    }

    static func jsonObject(_ table: TOMLTable) -> String {
        let members = table.keys.map { "\(quoted($0)):\(json(table[$0]!))" }
        return "{" + members.joined(separator: ",") + "}"
    }

    private static func scalar(_ value: TOMLValueConvertible) -> String {
        if let bool = value.bool { return bool ? "true" : "false" }
        if let int = value.int { return String(int) }
        if let double = value.double { return String(double) }
        return value.debugDescription
    }

    static func quoted(_ string: String) -> String { JSON.string(string) }
}
