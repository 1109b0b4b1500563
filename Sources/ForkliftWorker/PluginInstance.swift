import CForkliftABI
import ForkliftConfig
import ForkliftLogging
import Glibc

/// A plugin failed a hook; the message is the plugin's own, prefixed with who failed.
public struct PluginFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One configured plugin (a `[pool.P.plugin.NAME]` table) bound to its loaded shared object.
///
/// Lives as long as the process: the host creates it before fork, and every worker inherits
/// it. The C strings and the `forklift_host_api` handed to the plugin are allocated once and
/// never freed, because the ABI promises plugins they stay valid.
public final class PluginInstance {
    public let settings: PluginSettings
    public let poolName: String
    public let descriptor: UnsafePointer<forklift_plugin>
    /// The plugin's own name and version, as it reports them.
    public let reportedName: String
    public let version: String
    private(set) var state: UnsafeMutableRawPointer?
    let api: UnsafeMutablePointer<forklift_host_api>

    public init(settings: PluginSettings, poolName: String, descriptor: UnsafePointer<forklift_plugin>) {
        self.settings = settings
        self.poolName = poolName
        self.descriptor = descriptor
        reportedName = descriptor.pointee.name.map { String(cString: $0) } ?? settings.name
        version = descriptor.pointee.version.map { String(cString: $0) } ?? "unknown"
        api = .allocate(capacity: 1)
        api.initialize(to: HostAPI.make())
        api.pointee.host_context = Unmanaged.passUnretained(self).toOpaque()
    }

    /// `name@version` for logs.
    public var label: String { "\(settings.name)@\(version)" }

    /// Runs the preload hook in the host, before any fork.
    public func preload() throws(PluginFailure) {
        let config = UnsafeMutablePointer<forklift_plugin_config>.allocate(capacity: 1)
        let entries = UnsafeMutablePointer<forklift_setting>.allocate(capacity: max(1, settings.settings.count))
        for (index, setting) in settings.settings.enumerated() {
            entries[index] = forklift_setting(key: strdup(setting.key), value: strdup(setting.value))
        }
        config.initialize(to: forklift_plugin_config(
            struct_size: UInt32(MemoryLayout<forklift_plugin_config>.size),
            instance_name: strdup(settings.name),
            pool_name: strdup(poolName),
            route: strdup(settings.route),
            settings: entries,
            settings_count: settings.settings.count,
            settings_json: strdup(settings.settingsJSON)
        ))
        guard let hook = descriptor.pointee.preload else { return }
        var error = forklift_error()
        var newState: UnsafeMutableRawPointer?
        if hook(api, config, &newState, &error) != Int32(FORKLIFT_OK) {
            throw PluginFailure("plugin \(settings.name) (\(settings.path)): preload failed: \(Self.message(&error))")
        }
        state = newState
    }

    /// Runs the worker init hook, right after fork.
    public func workerInit() throws(PluginFailure) {
        guard let hook = descriptor.pointee.worker_init else { return }
        var error = forklift_error()
        if hook(state, &error) != Int32(FORKLIFT_OK) {
            throw PluginFailure("plugin \(settings.name): worker init failed: \(Self.message(&error))")
        }
    }

    /// Runs the handle hook. Returns the plugin's error message on failure.
    func handle(_ request: OpaquePointer, _ response: OpaquePointer) -> String? {
        var error = forklift_error()
        guard let hook = descriptor.pointee.handle else { return "the plugin exports no handle hook" }
        if hook(state, request, response, &error) == Int32(FORKLIFT_OK) { return nil }
        return Self.message(&error)
    }

    public func workerExit() {
        descriptor.pointee.worker_exit?(state)
    }

    static func message(_ error: inout forklift_error) -> String {
        let text = withUnsafeBytes(of: &error.message) { raw -> String in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
        return text.isEmpty ? "(the plugin gave no message)" : text
    }
}
