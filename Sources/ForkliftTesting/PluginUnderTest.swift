import CForkliftABI
import ForkliftJSON
@_spi(Testing) import ForkliftPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A plugin loaded for a test, without a server: preloaded and initialised as a worker
/// would, then given requests built in memory; what it answers is returned whole.
///
/// ```swift
/// import ForkliftTesting
/// import Testing
/// @testable import Greeter
///
/// @Test func greets() throws {
///     let plugin = try PluginUnderTest(Greeter.self, settings: ["greeting": "Hi"])
///     let response = plugin.get("/greeter")
///     #expect(response.status == 200 && response.bodyText == "Hi, stranger!\n")
/// }
/// ```
///
/// `PluginUnderTest(library:)` loads the built shared object instead, through the plugin ABI
/// a Forklift host uses (`dlopen`, the entry symbol, the ABI version and table sizes), so the
/// test covers what the server will load. Both run the handler's hooks in the test's
/// process: preload (initialiser, `warmUp`, sealing of shared storage), then `workerInit`,
/// and `workerExit` when the value goes away.
///
/// What differs from a server: there is no fork, so preload and `workerInit` run in one
/// process (the fork-safety checks, one thread and no unflushed output, are not made), and
/// after the sealing a stray write into shared storage crashes the test process itself.
/// A test binary can link one plugin type (each exports the entry symbol); load others from
/// their `.so`. Requests are answered one at a time, on the caller's thread: use one value
/// from one test at a time.
public final class PluginUnderTest {
    /// NAME in `[pool.POOL.plugin.NAME]`, the pool's name, and the route: what the plugin's
    /// `PluginContext` says.
    public let instanceName: String
    /// The pool's name the plugin was given (`PluginContext.poolName`), "test" by default.
    public let poolName: String
    /// The route the plugin was given (`PluginContext.route`), "/" by default. Requests are
    /// not routed: each goes to this plugin whatever its path.
    public let route: String
    /// The pool's `max_body_size` (0: none) as the host enforces it.
    public var maxBodySize: Int

    /// The plugin's `name` and `version`, as `forklift check` shows them.
    public let name: String
    /// The plugin's `version` ("0.0.0" for a handler that declares none).
    public let version: String

    private let host = TestHost()
    private let plugin: forklift_plugin
    private var state: UnsafeMutableRawPointer?
    private let library: UnsafeMutableRawPointer?
    private let releaseState: Bool
    private let config: TestConfig

    /// What the plugin logged so far, in every hook.
    public var log: [PluginLogLine] { host.logLines }

    /// The memory the plugin's preload made read-only and announced (shared arenas, mapped
    /// files), with the labels a crash record would name.
    public var readOnlyRegions: [(length: Int, label: String)] { host.readOnlyRegions.map { ($0.length, $0.label) } }

    /// A handler type linked into the test: preloaded in this process.
    ///
    /// `settings` are the plugin's `settings` table, flat (`"model.path": "..."` for a nested
    /// key), all strings. Throws ``PluginTestError`` when the initialiser, `warmUp` or
    /// `workerInit` throws, with the plugin's message.
    public init(_ handler: any ForkliftHandler.Type, settings: [String: String] = [:], instanceName: String? = nil,
                route: String = "/", poolName: String = "test", maxBodySize: Int = 0) throws {
        self.instanceName = instanceName ?? handler.name
        self.poolName = poolName
        self.route = route
        self.maxBodySize = maxBodySize
        name = handler.name
        version = handler.version
        config = TestConfig(instanceName: self.instanceName, poolName: poolName, route: route, settings: settings)
        plugin = PluginHooks.descriptor(for: handler)
        library = nil
        releaseState = true
        do {
            state = try PluginHooks.preload(handler, api: host.api, config: config.pointer)
        } catch {
            throw PluginTestError("preload of \(name) failed: \(error)")
        }
        try initialiseWorker()
    }

    /// A built plugin (`.build/debug/libGreeter.so`), loaded through the plugin ABI.
    ///
    /// Checks what a host checks before preloading: it loads (`dlopen`), exports
    /// `forklift_plugin_entry`, speaks this ABI version, and has a handle hook. Throws
    /// ``PluginTestError`` naming what failed, or the plugin's own message when a hook fails.
    /// The library stays loaded until the test process exits. See ``built(_:)``.
    public init(library path: String, settings: [String: String] = [:], instanceName: String? = nil,
                route: String = "/", poolName: String = "test", maxBodySize: Int = 0) throws {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw PluginTestError("cannot load \(path): \(dlerror().map { String(cString: $0) } ?? "dlopen failed")")
        }
        guard let symbol = dlsym(handle, FORKLIFT_ENTRY_SYMBOL) else {
            dlclose(handle)
            throw PluginTestError("\(path) exports no \(FORKLIFT_ENTRY_SYMBOL): not a Forklift plugin (a Swift plugin needs @_cdecl(\"\(FORKLIFT_ENTRY_SYMBOL)\") and export(YourHandler.self))")
        }
        let entry = unsafeBitCast(symbol, to: forklift_plugin_entry_fn.self)
        guard let descriptor = entry() else { throw PluginTestError("\(path): \(FORKLIFT_ENTRY_SYMBOL)() returned NULL") }
        guard descriptor.pointee.abi_version == FORKLIFT_ABI_VERSION else {
            throw PluginTestError("\(path) was built for plugin ABI \(descriptor.pointee.abi_version), this SDK is ABI \(FORKLIFT_ABI_VERSION): rebuild it against this Forklift")
        }
        guard descriptor.pointee.struct_size >= UInt32(MemoryLayout<forklift_plugin>.size), descriptor.pointee.handle != nil else {
            throw PluginTestError("\(path): its forklift_plugin is \(descriptor.pointee.struct_size) bytes or has no handle hook")
        }
        plugin = descriptor.pointee
        library = handle
        releaseState = false
        name = plugin.name.map { String(cString: $0) } ?? "unnamed"
        version = plugin.version.map { String(cString: $0) } ?? "0.0.0"
        self.instanceName = instanceName ?? name
        self.poolName = poolName
        self.route = route
        self.maxBodySize = maxBodySize
        config = TestConfig(instanceName: self.instanceName, poolName: poolName, route: route, settings: settings)
        if let preload = plugin.preload {
            var error = forklift_error()
            var preloaded: UnsafeMutableRawPointer?
            guard preload(host.api, config.pointer, &preloaded, &error) == Int32(FORKLIFT_OK) else {
                throw PluginTestError("preload of \(name) failed: \(Self.message(&error))")
            }
            state = preloaded
        }
        try initialiseWorker()
    }

    deinit {
        plugin.worker_exit?(state)
        if releaseState, let state { PluginHooks.release(state) }
        // The library stays loaded: Swift metadata and the handler's globals may still be
        // referenced, and a real worker never unloads either.
    }

    private func initialiseWorker() throws {
        guard let workerInit = plugin.worker_init else { return }
        var error = forklift_error()
        guard workerInit(state, &error) == Int32(FORKLIFT_OK) else {
            throw PluginTestError("worker_init of \(name) failed: \(Self.message(&error))")
        }
    }

    /// Sends one request through the plugin's handle hook, and returns what it answered under
    /// the worker's rules (a failure is a ``PluginResponse/failure``, not a throw).
    public func respond(to request: PluginRequest) -> PluginResponse {
        let requestState = TestRequestState(request, bodyLimit: maxBodySize)
        let responseState = TestResponseState(request: requestState)
        var error = forklift_error()
        let result = plugin.handle!(state, requestState.opaque, responseState.opaque, &error)
        let failure = result == Int32(FORKLIFT_OK) ? nil : Self.message(&error)
        return PluginResponse(recorded: responseState, failure: failure, bodyBytesRead: requestState.bodyBytesRead, maxBodySize: maxBodySize)
    }

    /// A GET of `target` (`/path?query`); see ``PluginRequest/init(_:method:body:headers:params:)``.
    public func get(_ target: String, headers: [(String, String)] = [], params: [(String, String)] = []) -> PluginResponse {
        respond(to: PluginRequest(target, headers: headers, params: params))
    }

    /// A POST of `body` to `target`; see ``PluginRequest/init(_:method:body:headers:params:)``.
    public func post(_ target: String, body: [UInt8], headers: [(String, String)] = [], params: [(String, String)] = []) -> PluginResponse {
        respond(to: PluginRequest(target, method: "POST", body: body, headers: headers, params: params))
    }

    /// A POST of `body`'s UTF-8 bytes to `target`.
    public func post(_ target: String, body: String, headers: [(String, String)] = [], params: [(String, String)] = []) -> PluginResponse {
        post(target, body: Array(body.utf8), headers: headers, params: params)
    }

    private static func message(_ error: inout forklift_error) -> String {
        withUnsafeBytes(of: &error.message) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }
}

/// Why a plugin could not be loaded or initialised for a test.
public struct PluginTestError: Error, CustomStringConvertible {
    /// What failed, e.g. "preload of greeter failed: settings: model.path is required".
    public let description: String
    /// An error whose description is `description`.
    public init(_ description: String) { self.description = description }
}

/// A line the plugin logged through the host.
public struct PluginLogLine: Equatable, Sendable, CustomStringConvertible {
    /// The level the plugin logged at (`PluginLog`'s methods), lowest first.
    public enum Level: Int, Sendable {
        /// `log.debug(_:)`.
        case debug
        /// `log.info(_:)`.
        case info
        /// `log.notice(_:)`.
        case notice
        /// `log.warning(_:)`.
        case warning
        /// `log.error(_:)`, and any level this library does not know.
        case error
    }
    /// The level it was logged at.
    public let level: Level
    /// The text, as the plugin wrote it.
    public let message: String
    /// "level: message", e.g. "warning: cache is cold".
    public var description: String { "\(level): \(message)" }
}

/// The plugin configuration the host passes at preload, kept alive for the plugin's life
/// (a plugin may keep the pointers, as the ABI allows).
final class TestConfig {
    let pointer: UnsafeMutablePointer<forklift_plugin_config>
    private var strings: [UnsafeMutablePointer<CChar>] = []
    private let settings: UnsafeMutablePointer<forklift_setting>
    private let count: Int

    init(instanceName: String, poolName: String, route: String, settings: [String: String]) {
        let sorted = settings.sorted { $0.key < $1.key }
        count = sorted.count
        self.settings = .allocate(capacity: max(1, sorted.count))
        pointer = .allocate(capacity: 1)
        func keep(_ text: String) -> UnsafePointer<CChar> {
            let copy = strdup(text)!
            strings.append(copy)
            return UnsafePointer(copy)
        }
        for (index, entry) in sorted.enumerated() {
            self.settings[index] = forklift_setting(key: keep(entry.key), value: keep(entry.value))
        }
        let json = "{" + sorted.map { "\(JSON.string($0.key)):\(JSON.string($0.value))" }.joined(separator: ",") + "}"
        pointer.initialize(to: forklift_plugin_config(
            struct_size: UInt32(MemoryLayout<forklift_plugin_config>.size), instance_name: keep(instanceName), pool_name: keep(poolName),
            route: keep(route), settings: UnsafePointer(self.settings), settings_count: sorted.count, settings_json: keep(json)))
    }

    deinit {
        // Freed with the plugin: PluginUnderTest holds this until after worker_exit.
        for string in strings { free(string) }
        self.settings.deallocate()
        pointer.deallocate()
    }
}

extension PluginUnderTest {
    /// Where SwiftPM put this test's build: the directory of the running test binary
    /// (`.build/debug`), where `swift build` also puts the package's plugin libraries.
    public static var buildDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return ".build/debug" }
        let path = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
    }

    /// `lib<product>.so` in `buildDirectory`: a dynamic library product of this package, as
    /// `swift build` built it (build before testing: `swift build && swift test`).
    public static func built(_ product: String) -> String {
        buildDirectory + "/lib\(product).so"
    }
}
