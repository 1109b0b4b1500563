import CForkliftABI

/// What the host tells a plugin at preload: where it is configured and its settings.
///
/// Handed to ``ForkliftHandler/init(context:)`` in the host, before fork. Keep what you need
/// of it (the values are copies; `log` stays usable in every hook and in every worker).
public struct PluginContext {
    /// NAME in `[pool.POOL.plugin.NAME]`. One shared object may be configured several times,
    /// in one pool or in several, each an instance of its own.
    public let instanceName: String
    /// POOL in `[pool.POOL.plugin.NAME]`.
    public let poolName: String
    /// The route prefix this instance serves, e.g. "/hello".
    public let route: String
    /// The instance's `settings` table.
    public let settings: PluginSettings
    /// The error log, with this plugin's name attached to every line.
    public let log: PluginLog

    init(config: UnsafePointer<forklift_plugin_config>, log: PluginLog) {
        let c = config.pointee
        instanceName = c.instance_name.map { String(cString: $0) } ?? ""
        poolName = c.pool_name.map { String(cString: $0) } ?? ""
        route = c.route.map { String(cString: $0) } ?? "/"
        var entries: [(String, String)] = []
        for index in 0..<c.settings_count {
            let setting = c.settings[index]
            entries.append((setting.key.map { String(cString: $0) } ?? "", setting.value.map { String(cString: $0) } ?? ""))
        }
        settings = PluginSettings(entries: entries, json: c.settings_json.map { String(cString: $0) } ?? "{}")
        self.log = log
    }
}

/// The plugin's `settings` table. Nested tables appear as dotted keys ("model.path");
/// strings raw, numbers and booleans as written, arrays as JSON.
///
/// ```toml
/// [pool.www.plugin.dict]
/// settings = { size_mb = 64, strict = true, model = { path = "/srv/model.bin" } }
/// ```
///
/// ```swift
/// let size = try context.settings.int("size_mb") ?? 64          // throws for size_mb = "big"
/// let path = context.settings["model.path"]                     // "/srv/model.bin"
/// ```
///
/// Its strings live on the host's heap: read what you need in the initialiser, not per request
/// (every read of a heap `String` in a worker writes its reference count).
public struct PluginSettings {
    /// Every setting, sorted by key, as the host flattened the table.
    public let entries: [(key: String, value: String)]
    /// The whole table as a JSON object, for settings too rich for key/value.
    public let json: String

    /// Settings of your own: for a function that takes `PluginSettings`, in a test say.
    public init(entries: [(key: String, value: String)], json: String = "{}") {
        self.entries = entries
        self.json = json
    }

    /// The setting's value as written (a string without its quotes), or nil when it is absent.
    public subscript(key: String) -> String? {
        entries.first { $0.key == key }?.value
    }

    /// The setting as an integer; throws when it is present but not one.
    public func int(_ key: String) throws -> Int? {
        guard let text = self[key] else { return nil }
        guard let value = Int(text) else { throw PluginError("setting \(key): expected an integer, got \"\(text)\"") }
        return value
    }

    /// The setting as a boolean; throws when it is present but not one.
    public func bool(_ key: String) throws -> Bool? {
        guard let text = self[key] else { return nil }
        guard let value = Bool(text) else { throw PluginError("setting \(key): expected true or false, got \"\(text)\"") }
        return value
    }
}

/// Writes to Forklift's log, with the plugin's name attached. Usable in every hook.
///
/// Lines go to the error log (or standard error) in its format, text or JSON, each one
/// `write()`, so lines from several threads or workers do not interleave; a line below the
/// configured `log_level` (default notice) is dropped. Safe to call from threads the plugin
/// started in ``ForkliftHandler/workerInit()``. Keep it, it is a small value: the one from
/// ``PluginContext/log`` stays valid in every worker.
public struct PluginLog {
    let api: UnsafePointer<forklift_host_api>

    /// Logs `message` at debug level: seen only with `log_level = "debug"`.
    public func debug(_ message: String) { write(FORKLIFT_LOG_DEBUG, message) }
    /// Logs `message` at info level.
    public func info(_ message: String) { write(FORKLIFT_LOG_INFO, message) }
    /// Logs `message` at notice level, the default `log_level`.
    public func notice(_ message: String) { write(FORKLIFT_LOG_NOTICE, message) }
    /// Logs `message` at warning level.
    public func warning(_ message: String) { write(FORKLIFT_LOG_WARNING, message) }
    /// Logs `message` at error level.
    public func error(_ message: String) { write(FORKLIFT_LOG_ERROR, message) }

    private func write(_ level: Int, _ message: String) {
        var text = message
        text.withUTF8 { bytes in
            api.pointee.log?(api, Int32(level), UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }
}
