import CForkliftABI

/// What the host tells a plugin at preload: where it is configured and its settings.
public struct PluginContext {
    /// NAME in `[pool.POOL.plugin.NAME]`.
    public let instanceName: String
    public let poolName: String
    /// The route prefix this instance serves, e.g. "/hello".
    public let route: String
    public let settings: PluginSettings
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
public struct PluginSettings {
    public let entries: [(key: String, value: String)]
    /// The whole table as a JSON object, for settings too rich for key/value.
    public let json: String

    public init(entries: [(key: String, value: String)], json: String = "{}") {
        self.entries = entries
        self.json = json
    }

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
public struct PluginLog {
    let api: UnsafePointer<forklift_host_api>

    public func debug(_ message: String) { write(FORKLIFT_LOG_DEBUG, message) }
    public func info(_ message: String) { write(FORKLIFT_LOG_INFO, message) }
    public func notice(_ message: String) { write(FORKLIFT_LOG_NOTICE, message) }
    public func warning(_ message: String) { write(FORKLIFT_LOG_WARNING, message) }
    public func error(_ message: String) { write(FORKLIFT_LOG_ERROR, message) }

    private func write(_ level: Int, _ message: String) {
        var text = message
        text.withUTF8 { bytes in
            api.pointee.log?(api, Int32(level), UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }
}
