import Foundation
import TOMLKit

/// Reads `conf.d/*.toml` in lexical order into a validated `Configuration`.
///
/// `[global]` may appear in several files; a later file's key overrides an earlier one's (so
/// `99-local.toml` can adjust `00-global.toml`). A pool is defined in exactly one file.
public enum ConfigurationLoader {
    static let globalKeys = ["pid", "error_log", "log_level", "log_format", "die_timeout", "reload_timeout", "background_loading",
                             "control_socket", "prefix", "emergency_restart_threshold", "emergency_restart_interval"]
    static let poolKeys = ["listen", "listen_backlog"] + ListenOptionsReader.keys + ["pm", "max_children", "max_requests", "max_requests_jitter",
                           "max_private_memory", "memory_log_interval"] + PoolSizingReader.keys + PoolStatusReader.keys
        + ["request_slowlog_timeout", "all_busy_warning", "request_read_timeout", "request_write_timeout", "keepalive_timeout",
           "request_terminate_timeout", "max_params_size", "max_body_size", "slowlog", "catch_workers_output",
           "decorate_workers_output", "access_log", "access_format", "access_log_format", "plugin"]
        + PrivilegesReader.keys
    static let pluginKeys = ["path", "route", "settings", "request_terminate_timeout"]

    /// Loads every `*.toml` file of `directory`. `running`: the master that reads them for a
    /// reload, whose control socket and pid file no pool may listen on. `rootPolicy`: the
    /// master's, which refuses pools whose workers would run as root (nil: no such check,
    /// for tools that only read the files).
    public static func load(directory: String, running: RunningMaster? = nil, rootPolicy: RootPolicy? = nil) throws(ConfigurationError) -> Configuration {
        let directoryURL = URL(fileURLWithPath: directory).standardizedFileURL
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directoryURL.path)
        } catch {
            throw ConfigurationError(file: directory, key: nil, "cannot read the configuration directory: \(describe(error))")
        }
        var files: [(name: String, contents: String)] = []
        for name in names.filter({ $0.hasSuffix(".toml") }).sorted() {
            let path = directoryURL.appendingPathComponent(name).path
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigurationError(file: path, key: nil, "cannot read the file")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ConfigurationError(file: path, key: nil, "is not valid UTF-8")
            }
            files.append((path, text))
        }
        guard !files.isEmpty else {
            throw ConfigurationError(file: directoryURL.path, key: nil, "no *.toml files in the configuration directory")
        }
        return try parse(files: files, configurationDirectory: directoryURL.path, running: running, rootPolicy: rootPolicy)
    }

    /// Parses already-read files (named as they should appear in errors), in the given order.
    public static func parse(files: [(name: String, contents: String)], configurationDirectory: String,
                             running: RunningMaster? = nil, rootPolicy: RootPolicy? = nil) throws(ConfigurationError) -> Configuration {
        var tables: [(file: String, table: TOMLTable)] = []
        for file in files {
            let table: TOMLTable
            do {
                table = try TOMLTable(string: file.contents)
            } catch let error as TOMLParseError {
                let at = error.source.begin
                throw ConfigurationError(file: file.name, key: nil, "line \(at.line), column \(at.column): \(error.description)")
            } catch {
                throw ConfigurationError(file: file.name, key: nil, "\(error)")
            }
            // Before any value: what a misspelt key's absence causes would hide the misspelling.
            try UnknownKeys.check(table, file: file.name)
            tables.append((file.name, table))
        }
        var draft = Draft()
        for (file, table) in tables {
            try read(TableReader(table, file: file, path: ""), into: &draft)
        }
        var configuration = try draft.resolve(configurationDirectory: configurationDirectory, lastFile: files.last?.name ?? configurationDirectory,
                                              running: running, rootPolicy: rootPolicy)
        configuration.files = files.map(\.name)
        return configuration
    }

    private static func read(_ root: TableReader, into draft: inout Draft) throws(ConfigurationError) {
        if let global = try root.subtable("global") {
            try readGlobal(TableReader(global, file: root.file, path: "global"), into: &draft)
        }
        for (name, pool) in try root.tables(in: "pool") {
            if let earlier = draft.pools.first(where: { $0.name == name }) {
                throw pool.error(nil, "pool \"\(name)\" is already defined in \(earlier.file)")
            }
            draft.pools.append(try readPool(name: name, pool))
        }
        try root.rejectUnknownKeys(allowed: ["[global]", "[pool.NAME]"])
    }

    private static func readGlobal(_ table: TableReader, into draft: inout Draft) throws(ConfigurationError) {
        if let prefix = try table.string("prefix") { draft.prefix = prefix }
        if let pid = try table.string("pid") { draft.pid = pid }
        if let log = try table.string("error_log") { draft.errorLog = log }
        if let level = try table.oneOf("log_level", LogLevel.self, choices: LogLevel.allCases) { draft.logLevel = level }
        if let format = try table.oneOf("log_format", LogFormat.self, choices: LogFormat.allCases) { draft.logFormat = format }
        if let timeout = try table.duration("die_timeout") { draft.dieTimeout = timeout }
        if let timeout = try table.duration("reload_timeout") {
            guard timeout > 0 else { throw table.error("reload_timeout", "expected a duration above 0") }
            draft.reloadTimeout = timeout
        }
        if let limit = try table.duration("background_loading") { draft.backgroundLoading = limit }
        if let socket = try table.string("control_socket") { draft.controlSocket = socket }
        if let threshold = try table.integer("emergency_restart_threshold", atLeast: 0, atMost: 100_000) {
            draft.emergencyRestartThreshold = threshold
        }
        if let interval = try table.duration("emergency_restart_interval") { draft.emergencyRestartInterval = interval }
        try table.rejectUnknownKeys(allowed: globalKeys)
        for key in table.table.keys { draft.globalFiles[key] = table.file }
    }

    private static func readPool(name: String, _ table: TableReader) throws(ConfigurationError) -> Draft.Pool {
        guard PoolNames.isValid(name) else {
            throw table.error(nil, "a pool name may hold letters, digits, '-' and '_' only")
        }
        let listen = try table.requiredString("listen")
        var pool = Draft.Pool(name: name, file: table.file, listen: listen)
        if let backlog = try table.integer("listen_backlog", atLeast: 1, atMost: 65535) { pool.backlog = Int32(backlog) }
        pool.listenOptions = try ListenOptionsReader.read(table)
        pool.sizing = try PoolSizingReader.read(table)
        pool.privileges = try PrivilegesReader.read(table, environment: ProcessInfo.processInfo.environment)
        pool.maxRequests = try table.integer("max_requests", atLeast: 0, atMost: 1_000_000_000) ?? 0
        pool.maxRequestsJitter = try table.integer("max_requests_jitter", atLeast: 0, atMost: 1_000_000_000) ?? 0
        pool.maxPrivateMemory = try table.size("max_private_memory") ?? 0
        pool.memoryLogInterval = try table.duration("memory_log_interval") ?? 0
        pool.status = try PoolStatusReader.read(table)
        pool.requestSlowlogTimeout = try table.duration("request_slowlog_timeout") ?? 0
        pool.allBusyWarning = try table.duration("all_busy_warning") ?? 10
        pool.requestReadTimeout = try positiveDuration(table, "request_read_timeout") ?? 5
        pool.requestWriteTimeout = try positiveDuration(table, "request_write_timeout") ?? 30
        pool.keepaliveTimeout = try table.duration("keepalive_timeout") ?? 10
        pool.requestTerminateTimeout = try table.duration("request_terminate_timeout") ?? 0
        if let size = try table.size("max_params_size") {
            // A request's params must fit in what the worker reads before libfcgi does.
            guard size >= 1024, size <= 16 << 20 else {
                throw table.error("max_params_size", "expected a size between 1k and 16M, got \(size) bytes")
            }
            pool.maxParamsSize = size
        }
        pool.maxBodySize = try table.size("max_body_size") ?? 0
        if let slowlog = try table.string("slowlog") {
            guard !slowlog.isEmpty else { throw table.error("slowlog", "must not be empty") }
            pool.slowlog = slowlog
        }
        pool.catchWorkersOutput = try table.bool("catch_workers_output") ?? false
        pool.decorateWorkersOutput = try table.bool("decorate_workers_output") ?? true
        if let log = try table.string("access_log") {
            guard !log.isEmpty else { throw table.error("access_log", "must not be empty") }
            pool.accessLog = log
        }
        if let format = try table.string("access_format") {
            do {
                _ = try AccessLogFormat(format)
            } catch {
                throw table.error("access_format", error.message)
            }
            guard pool.accessLog != nil else { throw table.error("access_format", "needs access_log (where the lines go)") }
            pool.accessFormat = format
        }
        if let format = try table.oneOf("access_log_format", LogFormat.self, choices: LogFormat.allCases) {
            guard pool.accessLog != nil else { throw table.error("access_log_format", "needs access_log (where the lines go)") }
            if format == .json, try table.string("access_format") != nil {
                throw table.error("access_log_format", "json writes every field itself: remove access_format, or use access_log_format = \"text\"")
            }
            pool.accessLogFormat = format
        }
        for (pluginName, plugin) in try table.tables(in: "plugin") {
            pool.plugins.append(try readPlugin(name: pluginName, plugin))
        }
        guard !pool.plugins.isEmpty else {
            throw table.error("plugin", "is required: at least one [\(table.path).plugin.NAME] table with path and route")
        }
        var seenRoutes: [String: String] = [:]
        for plugin in pool.plugins {
            if let other = seenRoutes[plugin.route] {
                throw table.error("plugin.\(plugin.name).route", "route \"\(plugin.route)\" is already served by plugin \"\(other)\"")
            }
            seenRoutes[plugin.route] = plugin.name
        }
        try table.rejectUnknownKeys(allowed: poolKeys)
        return pool
    }

    private static func readPlugin(name: String, _ table: TableReader) throws(ConfigurationError) -> Draft.Plugin {
        let path = try table.requiredString("path")
        let route = try table.requiredString("route")
        guard route.hasPrefix("/") else {
            throw table.error("route", "expected a path prefix starting with \"/\", got \"\(route)\"")
        }
        let terminate = try table.duration("request_terminate_timeout")
        var settings: [PluginSettings.Setting] = []
        var json = "{}"
        if let table = try table.subtable("settings") {
            settings = flatten(table, prefix: "")
            json = ValueText.jsonObject(table)
        }
        try table.rejectUnknownKeys(allowed: pluginKeys)
        return Draft.Plugin(name: name, path: path, route: route, settings: settings, settingsJSON: json, requestTerminateTimeout: terminate)
    }

    /// Nested tables become dotted keys; arrays stay whole, as JSON text.
    private static func flatten(_ table: TOMLTable, prefix: String) -> [PluginSettings.Setting] {
        table.keys.flatMap { key -> [PluginSettings.Setting] in
            let value = table[key]!
            let dotted = prefix.isEmpty ? key : "\(prefix).\(key)"
            if let nested = value.table { return flatten(nested, prefix: dotted) }
            return [PluginSettings.Setting(key: dotted, value: ValueText.setting(value))]
        }
    }

    static func describe(_ error: Error) -> String {
        (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
    }
}

/// A duration that must be above 0 (a deadline of 0 would refuse every request).
private func positiveDuration(_ table: TableReader, _ key: String) throws(ConfigurationError) -> Double? {
    guard let value = try table.duration(key) else { return nil }
    guard value >= 0.001 else { throw table.error(key, "expected a duration above 0") }
    return value
}

enum PoolNames {
    static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
    }
}
