/// Durations as PHP-FPM writes them, plus compound ones: a number of seconds (`30`, `0.5`)
/// or a string of number+unit parts (`"500ms"`, `"10s"`, `"2m"`, `"1h"`, `"1m30s"`).
public enum DurationParser {
    public static func seconds(fromString text: String) -> Double? {
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        var rest = Substring(text.filter { !$0.isWhitespace })
        guard !rest.isEmpty else { return nil }
        if let plain = Double(rest) { return plain >= 0 && plain.isFinite ? plain : nil }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            // "ms" is listed before "m", so "500ms" is never read as minutes.
            guard let unit = units.first(where: { rest.hasPrefix($0.suffix) }) else { return nil }
            rest = rest.dropFirst(unit.suffix.count)
            total += value * unit.seconds
        }
        return total.isFinite ? total : nil
    }

}

/// Sizes as PHP-FPM and uWSGI users write them: bytes, or a number with k, M or G (powers of
/// 1024, case-insensitive, an optional trailing "B" or "iB").
public enum SizeParser {
    /// A pebibyte is more than any limit means; beyond it (or inf, nan) is a mistake, and
    /// Int() of it would trap.
    public static let largest = 1 << 50

    public static func bytes(fromString text: String) -> Int? {
        var rest = Substring(text.filter { !$0.isWhitespace }.lowercased())
        if rest.hasSuffix("ib") { rest = rest.dropLast(2) } else if rest.hasSuffix("b") { rest = rest.dropLast() }
        let multipliers: [Character: Double] = ["k": 1024, "m": 1_048_576, "g": 1_073_741_824]
        var multiplier = 1.0
        if let last = rest.last, let factor = multipliers[last] {
            multiplier = factor
            rest = rest.dropLast()
        }
        guard let number = Double(rest), number >= 0, number * multiplier <= Double(largest) else { return nil }
        return Int(number * multiplier)
    }
}
