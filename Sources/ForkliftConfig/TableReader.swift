import TOMLKit

/// Reads one TOML table, remembering which keys were asked for so that whatever is left
/// over can be reported as unknown. Every error names the file and the dotted key.
final class TableReader {
    let table: TOMLTable
    let file: String
    let path: String
    private var consumed: Set<String> = []

    init(_ table: TOMLTable, file: String, path: String) {
        self.table = table
        self.file = file
        self.path = path
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String?, _ message: String) -> ConfigurationError {
        ConfigurationError(file: file, key: key.map(keyPath) ?? (path.isEmpty ? nil : path), message)
    }

    private func value(_ key: String) -> TOMLValueConvertible? {
        consumed.insert(key)
        return table[key]
    }

    private func wrongType(_ key: String, _ value: TOMLValueConvertible, expected: String) -> ConfigurationError {
        error(key, "expected \(expected), got the \(value.type) \(ValueText.toml(value))")
    }

    func string(_ key: String) throws(ConfigurationError) -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.string else { throw wrongType(key, value, expected: "a string") }
        return string
    }

    /// A list: PHP-FPM's comma-separated string ("a, b"), or a TOML array of strings.
    func stringList(_ key: String) throws(ConfigurationError) -> [String]? {
        guard let value = value(key) else { return nil }
        if let text = value.string { return text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let array = value.array else { throw wrongType(key, value, expected: "a string or an array of strings") }
        var items: [String] = []
        for item in array {
            guard let text = item.string else { throw wrongType(key, item, expected: "an array of strings") }
            items.append(text)
        }
        return items
    }

    /// true or false (PHP-FPM's "yes" and "no" too).
    func bool(_ key: String) throws(ConfigurationError) -> Bool? {
        guard let value = value(key) else { return nil }
        if let flag = value.bool { return flag }
        if let text = value.string {
            switch text.lowercased() {
            case "yes", "on", "true": return true
            case "no", "off", "false": return false
            default: break
            }
        }
        throw wrongType(key, value, expected: "true or false")
    }

    func requiredString(_ key: String) throws(ConfigurationError) -> String {
        guard let string = try string(key) else { throw error(key, "is required (a string)") }
        guard !string.isEmpty else { throw error(key, "must not be empty") }
        return string
    }

    func integer(_ key: String, atLeast minimum: Int, atMost maximum: Int = Int.max) throws(ConfigurationError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let number = value.int else { throw wrongType(key, value, expected: "an integer") }
        guard number >= minimum, number <= maximum else {
            let range = maximum == Int.max ? "\(minimum) or more" : "between \(minimum) and \(maximum)"
            throw error(key, "expected an integer \(range), got \(number)")
        }
        return number
    }

    /// The longest duration any key takes: a year. Anything longer is a mistake, and an
    /// infinite one would overflow every deadline computed from it.
    static let longestDuration = 366.0 * 86400

    func duration(_ key: String) throws(ConfigurationError) -> Double? {
        guard let value = value(key) else { return nil }
        let expected = "a duration: seconds (30, 0.5) or a string with units (\"500ms\", \"10s\", \"2m\", \"1h\")"
        let seconds: Double
        if let number = value.int.map(Double.init) ?? value.double {
            guard !number.isNaN else { throw error(key, "expected \(expected), got nan") }
            guard number >= 0 else { throw error(key, "expected \(expected), got a negative number") }
            seconds = number
        } else {
            guard let text = value.string else { throw wrongType(key, value, expected: expected) }
            guard let parsed = DurationParser.seconds(fromString: text) else {
                throw error(key, "expected \(expected), got \"\(text)\"")
            }
            seconds = parsed
        }
        guard seconds <= Self.longestDuration else {
            throw error(key, "expected a duration of at most a year (\(Int(Self.longestDuration)) s), got \(ValueText.toml(value))")
        }
        return seconds
    }

    /// A size in bytes: an integer, or a string with a unit ("512k", "64M", "1G"; powers of 1024).
    func size(_ key: String) throws(ConfigurationError) -> Int? {
        guard let value = value(key) else { return nil }
        let expected = "a size: bytes (1048576) or a string with a unit (\"512k\", \"64M\", \"1G\")"
        if let bytes = value.int {
            guard bytes >= 0 else { throw error(key, "expected \(expected), got a negative number") }
            guard bytes <= SizeParser.largest else { throw error(key, "expected a size of at most 1 PiB (\(SizeParser.largest) bytes), got \(bytes)") }
            return bytes
        }
        if value.double != nil { throw error(key, "expected \(expected), got \(ValueText.toml(value))") }
        guard let text = value.string else { throw wrongType(key, value, expected: expected) }
        guard let bytes = SizeParser.bytes(fromString: text) else { throw error(key, "expected \(expected), got \"\(text)\"") }
        return bytes
    }

    func oneOf<T: RawRepresentable>(_ key: String, _: T.Type, choices: [T]) throws(ConfigurationError) -> T? where T.RawValue == String {
        guard let text = try string(key) else { return nil }
        guard let choice = choices.first(where: { $0.rawValue == text }) else {
            let list = choices.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            throw error(key, "expected one of \(list), got \"\(text)\"")
        }
        return choice
    }

    func subtable(_ key: String) throws(ConfigurationError) -> TOMLTable? {
        guard let value = value(key) else { return nil }
        guard let table = value.table else { throw wrongType(key, value, expected: "a table") }
        return table
    }

    /// Each entry of a table of tables (`[pool.NAME]`, `[pool.P.plugin.NAME]`), in key order.
    func tables(in key: String) throws(ConfigurationError) -> [(name: String, reader: TableReader)] {
        guard let outer = try subtable(key) else { return [] }
        var result: [(String, TableReader)] = []
        for name in outer.keys {
            let entry = outer[name]!
            guard let table = entry.table else {
                throw error("\(key).\(name)", "expected a table such as [\(keyPath(key)).\(name)], got the \(entry.type) \(ValueText.toml(entry))")
            }
            result.append((name, TableReader(table, file: file, path: keyPath("\(key).\(name)"))))
        }
        return result
    }

    /// Fails on the first key nobody asked for, listing the keys that are allowed here. A
    /// backstop: UnknownKeys has refused every key not in `allowed` before anything was read,
    /// so what this finds is a key the list allows but no reader reads.
    func rejectUnknownKeys(allowed: [String]) throws(ConfigurationError) {
        for key in table.keys where !consumed.contains(key) {
            let list = allowed.joined(separator: ", ")
            throw error(key, "unknown key; expected one of: \(list)")
        }
    }
}
