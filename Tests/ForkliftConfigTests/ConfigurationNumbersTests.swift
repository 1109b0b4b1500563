@testable import ForkliftConfig
import Testing

/// Every duration, size and count in the configuration, with every kind of number that must
/// not get through: each is an error naming its key, and none traps (an infinite duration
/// once overflowed the first deadline computed from it and killed the master).
@Suite struct ConfigurationNumbersTests {
    enum Kind { case duration, size, count }

    /// (section, key, kind, the pool lines it needs beside it).
    static let keys: [(section: String, key: String, kind: Kind, pool: String)] = [
        ("global", "die_timeout", .duration, ""),
        ("global", "reload_timeout", .duration, ""),
        ("global", "background_loading", .duration, ""),
        ("global", "emergency_restart_interval", .duration, ""),
        ("global", "emergency_restart_threshold", .count, ""),
        ("pool", "listen_backlog", .count, ""),
        ("pool", "max_children", .count, ""),
        ("pool", "start_servers", .count, dynamic),
        ("pool", "min_spare_servers", .count, dynamic),
        ("pool", "max_spare_servers", .count, dynamic),
        ("pool", "max_spawn_rate", .count, dynamic),
        ("pool", "process_idle_timeout", .duration, "pm = \"ondemand\""),
        ("pool", "standby_workers", .count, ""),
        ("pool", "max_requests", .count, ""),
        ("pool", "max_requests_jitter", .count, ""),
        ("pool", "max_private_memory", .size, ""),
        ("pool", "memory_log_interval", .duration, ""),
        ("pool", "request_slowlog_timeout", .duration, ""),
        ("pool", "all_busy_warning", .duration, ""),
        ("pool", "request_read_timeout", .duration, ""),
        ("pool", "request_write_timeout", .duration, ""),
        ("pool", "keepalive_timeout", .duration, ""),
        ("pool", "request_terminate_timeout", .duration, ""),
        ("pool", "max_params_size", .size, ""),
        ("pool", "max_body_size", .size, ""),
        ("pool", "rlimit_files", .count, ""),
        ("pool", "rlimit_core", .size, ""),
        ("plugin", "request_terminate_timeout", .duration, ""),
    ]

    static let dynamic = "pm = \"dynamic\"\nmin_spare_servers = 1\nmax_spare_servers = 3"

    static func badValues(_ kind: Kind) -> [String] {
        let anyNumber = ["inf", "-inf", "nan", "1e300", "-1", "true", "\"\"", "[1]"]
        switch kind {
        case .duration: return anyNumber + ["\"-5s\"", "\"inf\"", "\"nan\"", "\"1e400s\"", "\"9999999999999999999999h\"", "\"5 parsecs\"", "\"1m-30s\"", "366000000"]
        case .size: return anyNumber + ["1.5", "\"1e400k\"", "\"inf\"", "\"nanM\"", "\"99999999999G\"", "\"-1k\"", "\"1.5.2M\"", "9223372036854775807"]
        case .count: return anyNumber + ["1.5", "\"4\"", "9223372036854775807", "-9223372036854775808", "1099511627776"]
        }
    }

    /// The whole table as configuration texts: (key as errors name it, text).
    static var cases: [(key: String, text: String)] {
        keys.flatMap { entry in
            badValues(entry.kind).map { value in
                let line = "\(entry.key) = \(value)"
                var poolLines = "max_children = 4"
                if entry.key == "max_children" { poolLines = "" }
                if !entry.pool.isEmpty {
                    poolLines += "\n" + entry.pool.split(separator: "\n").filter { !$0.hasPrefix(entry.key + " ") }.joined(separator: "\n")
                }
                let text: String
                switch entry.section {
                case "global": text = "[global]\n\(line)\n" + pool(poolLines)
                case "pool": text = pool(poolLines + "\n" + line)
                default: text = pool(poolLines) + "\n" + line
                }
                return (entry.section == "global" ? "global.\(entry.key)" : entry.section == "pool" ? "pool.www.\(entry.key)" : "pool.www.plugin.hello.\(entry.key)", text)
            }
        }
    }

    @Test func everyBadNumberIsAnErrorNamingItsKey() {
        var checked = 0
        for (key, text) in Self.cases {
            guard let error = parseError(text) else {
                Issue.record("accepted:\n\(text)")
                continue
            }
            // TOML refuses some literals itself (1e400, a bare "-inf" is fine): those name the line.
            let named = error.key == key || error.message.hasPrefix("line ")
            #expect(named, "\(key): \(error)")
            checked += 1
        }
        #expect(checked > 350, "the table is the whole table: \(checked)")
    }

    /// A key added later is either in the table above or known not to be a number.
    @Test func theTableCoversEveryNumericKey() {
        let notNumbers: Set<String> = [
            "global.pid", "global.error_log", "global.log_level", "global.log_format", "global.control_socket", "global.prefix",
            "pool.listen", "pool.listen_owner", "pool.listen_group", "pool.listen_mode", "pool.listen_allowed_clients", "pool.pm", "pool.status_path", "pool.ping_path", "pool.ping_response", "pool.status_listen",
            "pool.slowlog", "pool.catch_workers_output", "pool.decorate_workers_output", "pool.access_log", "pool.access_format", "pool.access_log_format",
            "pool.plugin", "plugin.path", "plugin.route", "plugin.settings",
            "pool.user", "pool.group", "pool.chroot", "pool.chdir", "pool.clear_env", "pool.env", "pool.process_scheduling",
            // A signed number (-19 to 20), where the table's bad values include -1: PrivilegesConfigTests.
            "pool.process_priority",
        ]
        let covered = Set(Self.keys.map { "\($0.section).\($0.key)" })
        let all = ConfigurationLoader.globalKeys.map { "global." + $0 } + ConfigurationLoader.poolKeys.map { "pool." + $0 }
            + ConfigurationLoader.pluginKeys.map { "plugin." + $0 }
        for key in all {
            #expect(covered.contains(key) || notNumbers.contains(key), "\(key) is in neither list")
        }
    }
}
