/// `pm` and the keys that size a pool, validated the way PHP-FPM validates them
/// (`fpm_conf.c`), with the same defaults. A key that only applies to another `pm` is an
/// error rather than silently ignored: it usually means the pool is not doing what its
/// author thinks.
enum PoolSizingReader {
    static let keys = ["pm", "max_children", "start_servers", "min_spare_servers", "max_spare_servers", "max_spawn_rate",
                       "process_idle_timeout", "standby_workers"]

    struct Sizing {
        var processManager = ProcessManager.static
        var maxChildren = 1
        var startServers = 0
        var minSpareServers = 0
        var maxSpareServers = 0
        var maxSpawnRate = 32
        var processIdleTimeout = 10.0
        var standbyWorkers = 0
    }

    static func read(_ table: TableReader) throws(ConfigurationError) -> Sizing {
        var sizing = Sizing()
        sizing.processManager = try table.oneOf("pm", ProcessManager.self, choices: ProcessManager.allCases) ?? .static
        guard let children = try table.integer("max_children", atLeast: 1, atMost: 10_000) else {
            throw table.error("max_children", "is required (the most workers alive at once, 1 or more)")
        }
        sizing.maxChildren = children
        let start = try table.integer("start_servers", atLeast: 1, atMost: 10_000)
        let minSpare = try table.integer("min_spare_servers", atLeast: 1, atMost: 10_000)
        let maxSpare = try table.integer("max_spare_servers", atLeast: 1, atMost: 10_000)
        let spawnRate = try table.integer("max_spawn_rate", atLeast: 1, atMost: 10_000)
        let idleTimeout = try table.duration("process_idle_timeout")
        if let standby = try table.integer("standby_workers", atLeast: 0, atMost: 10_000) {
            guard standby <= children else {
                throw table.error("standby_workers", "standby_workers (\(standby)) cannot be greater than max_children (\(children))")
            }
            sizing.standbyWorkers = standby
        }

        let pm = sizing.processManager
        func only(_ key: String, _ value: Any?, for wanted: ProcessManager) throws(ConfigurationError) {
            guard value != nil, pm != wanted else { return }
            throw table.error(key, "applies to pm = \"\(wanted.rawValue)\" only, and this pool has pm = \"\(pm.rawValue)\"")
        }
        try only("start_servers", start, for: .dynamic)
        try only("min_spare_servers", minSpare, for: .dynamic)
        try only("max_spare_servers", maxSpare, for: .dynamic)
        try only("max_spawn_rate", spawnRate, for: .dynamic)
        try only("process_idle_timeout", idleTimeout, for: .ondemand)

        switch pm {
        case .static:
            sizing.startServers = children
        case .ondemand:
            if let idleTimeout {
                guard idleTimeout >= 0.001 else { throw table.error("process_idle_timeout", "expected a duration above 0") }
                sizing.processIdleTimeout = idleTimeout
            }
        case .dynamic:
            guard let minSpare else {
                throw table.error("min_spare_servers", "is required with pm = \"dynamic\" (the fewest idle workers to keep, 1 or more)")
            }
            guard let maxSpare else {
                throw table.error("max_spare_servers", "is required with pm = \"dynamic\" (the most idle workers to keep)")
            }
            guard minSpare <= children, maxSpare <= children else {
                throw table.error(minSpare > children ? "min_spare_servers" : "max_spare_servers",
                                  "min_spare_servers (\(minSpare)) and max_spare_servers (\(maxSpare)) cannot be greater than max_children (\(children))")
            }
            guard maxSpare >= minSpare else {
                throw table.error("max_spare_servers", "max_spare_servers (\(maxSpare)) must not be less than min_spare_servers (\(minSpare))")
            }
            let startServers = start ?? minSpare + (maxSpare - minSpare) / 2
            guard startServers >= minSpare, startServers <= maxSpare else {
                throw table.error("start_servers", "start_servers (\(startServers)) must not be less than min_spare_servers (\(minSpare)) and not greater than max_spare_servers (\(maxSpare))")
            }
            sizing.startServers = startServers
            sizing.minSpareServers = minSpare
            sizing.maxSpareServers = maxSpare
            sizing.maxSpawnRate = spawnRate ?? 32
        }
        return sizing
    }
}

/// `status_path`, `ping_path`, `ping_response` and `status_listen`: PHP-FPM's names.
enum PoolStatusReader {
    static let keys = ["status_path", "ping_path", "ping_response", "status_listen"]

    struct Status {
        var statusPath: String?
        var pingPath: String?
        var pingResponse = "pong"
        var statusListen: String?
    }

    static func read(_ table: TableReader) throws(ConfigurationError) -> Status {
        var status = Status()
        status.statusPath = try path(table, "status_path")
        status.pingPath = try path(table, "ping_path")
        if let statusPath = status.statusPath, statusPath == status.pingPath {
            throw table.error("ping_path", "is the same path as status_path (\"\(statusPath)\")")
        }
        if let response = try table.string("ping_response") {
            guard status.pingPath != nil else { throw table.error("ping_response", "needs ping_path (the path that answers it)") }
            guard response.utf8.count <= 1024 else { throw table.error("ping_response", "expected at most 1024 bytes") }
            status.pingResponse = response
        }
        if let listen = try table.string("status_listen") {
            guard !listen.isEmpty else { throw table.error("status_listen", "must not be empty") }
            guard status.statusPath != nil || status.pingPath != nil else {
                throw table.error("status_listen", "needs status_path or ping_path: it answers only those")
            }
            status.statusListen = listen
        }
        return status
    }

    /// A path like "/status": starts with "/", no query, no whitespace.
    private static func path(_ table: TableReader, _ key: String) throws(ConfigurationError) -> String? {
        guard let path = try table.string(key) else { return nil }
        guard path.hasPrefix("/"), !path.contains("?"), !path.contains(where: \.isWhitespace), path.utf8.count <= 256 else {
            throw table.error(key, "expected a path starting with \"/\" (no query, no spaces, at most 256 bytes), got \"\(path)\"")
        }
        return path
    }
}
