import TOMLKit

/// Unknown keys, looked for in each file before any value is read: a misspelt key would
/// otherwise surface only as what its absence causes (`max_chidren = 4` as "max_children: is
/// required"). Each is reported with the closest known key, or with the table it belongs in
/// when it is a key of another table (a pool key written below a plugin's table header lands
/// in that plugin's table: in TOML every key after a header belongs to it).
enum UnknownKeys {
    static func check(_ root: TOMLTable, file: String) throws(ConfigurationError) {
        let keys = ConfigurationLoader.self
        for key in root.keys where key != "global" && key != "pool" {
            let hint = hint(for: key, allowed: ["global", "pool"], shown: { $0 == "pool" ? "[pool.NAME]" : "[\($0)]" },
                            elsewhere: [(keys.globalKeys, "[global]: move it there"), (keys.poolKeys, "a [pool.NAME] table: move it there")])
            throw unknown(file, key, hint, allowed: ["[global]", "[pool.NAME]"])
        }
        if let global = root["global"]?.table {
            try check(global, file: file, path: "global", allowed: keys.globalKeys,
                      elsewhere: [(keys.poolKeys, "a [pool.NAME] table: move it there")])
        }
        guard let pools = root["pool"]?.table else { return }
        for name in pools.keys {
            guard let pool = pools[name]?.table else { continue }
            let path = "pool.\(name)"
            try check(pool, file: file, path: path, allowed: keys.poolKeys,
                      elsewhere: [(keys.globalKeys, "[global]: move it there"), (keys.pluginKeys, "a [\(path).plugin.NAME] table: move it there")])
            guard let plugins = pool["plugin"]?.table else { continue }
            for plugin in plugins.keys {
                guard let table = plugins[plugin]?.table else { continue }
                let header = "\(path).plugin.\(plugin)"
                try check(table, file: file, path: header, allowed: keys.pluginKeys,
                          elsewhere: [(keys.poolKeys.filter { !keys.pluginKeys.contains($0) },
                                       "[\(path)]: move it above [\(header)] (in TOML every key below a table header belongs to that table)")])
            }
        }
    }

    private static func check(_ table: TOMLTable, file: String, path: String, allowed: [String],
                              elsewhere: [(keys: [String], place: String)]) throws(ConfigurationError) {
        for key in table.keys where !allowed.contains(key) {
            throw unknown(file, "\(path).\(key)", hint(for: key, allowed: allowed, elsewhere: elsewhere), allowed: allowed)
        }
        // PHP-FPM's dotted names (pm.max_children, listen.backlog) make a TOML table of a key
        // that takes a value here.
        for key in ["pm", "listen"] where allowed.contains(key) {
            guard let dotted = table[key]?.table, let sub = dotted.keys.first else { continue }
            // listen.group is listen_group, not the pool's group.
            let ours = ["\(key)_\(sub)", sub].first { allowed.contains($0) }
            throw unknown(file, "\(path).\(key).\(sub)", ours.map { "PHP-FPM's \(key).\(sub) is \($0) here" }, allowed: allowed)
        }
    }

    /// A key of another table, as typed or nearly; else the nearest key of this one.
    private static func hint(for key: String, allowed: [String], shown: (String) -> String = { $0 },
                             elsewhere: [(keys: [String], place: String)]) -> String? {
        if let exact = elsewhere.first(where: { $0.keys.contains(key) }) { return "\(key) is a key of \(exact.place)" }
        if let near = closest(to: key, in: allowed) { return "did you mean \(shown(near))?" }
        for (keys, place) in elsewhere {
            if let near = closest(to: key, in: keys) { return "did you mean \(near)? That is a key of \(place)" }
        }
        return nil
    }

    private static func unknown(_ file: String, _ key: String, _ hint: String?, allowed: [String]) -> ConfigurationError {
        ConfigurationError(file: file, key: key, "unknown key; " + (hint ?? "expected one of: \(allowed.joined(separator: ", "))"))
    }

    /// The known key nearest to `key` (case and '-' for '_' cost nothing, two neighbours
    /// swapped one edit), if it is near enough to be what was meant: one edit per three
    /// characters typed, at least 1 and at most 3.
    static func closest(to key: String, in known: [String]) -> String? {
        let typed = Array(key.lowercased().replacingOccurrences(of: "-", with: "_").unicodeScalars)
        let limit = max(1, min(3, typed.count / 3))
        let scored = known.map { (key: $0, distance: editDistance(typed, Array($0.unicodeScalars))) }
        guard let best = scored.min(by: { $0.distance < $1.distance }), best.distance <= limit else { return nil }
        return best.key
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    /// two neighbours.
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var before = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], before[j - 2] + 1)
                }
            }
            (before, previous, current) = (previous, current, before)
        }
        return previous[b.count]
    }
}
