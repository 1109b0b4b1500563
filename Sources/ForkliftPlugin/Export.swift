import CForkliftABI

#if canImport(Glibc)
import Glibc
#endif

/// Exports `handler` as this shared object's plugin. Call it from the one entry function:
///
/// ```swift
/// @_cdecl("forklift_plugin_entry") public func entry() -> UnsafeRawPointer { export(Hello.self) }
/// ```
///
/// The host calls the entry function once, in its own process after `dlopen`, before any
/// hook runs; the pointer it returns is the plugin's C descriptor (`forklift_plugin`, see
/// docs/plugin-abi.md), valid for the life of the process. A shared object exports one
/// handler: a second call returns the first descriptor, whatever type it names. The
/// descriptor's name and version are the handler's ``ForkliftHandler/name`` and
/// ``ForkliftHandler/version``.
public func export<Handler: ForkliftHandler>(_ handler: Handler.Type) -> UnsafeRawPointer {
    if let existing = Exported.descriptor { return UnsafeRawPointer(existing) }
    Exported.handlerType = handler
    let descriptor = UnsafeMutablePointer<forklift_plugin>.allocate(capacity: 1)
    descriptor.initialize(to: forklift_plugin(
        abi_version: FORKLIFT_ABI_VERSION,
        struct_size: UInt32(MemoryLayout<forklift_plugin>.size),
        name: UnsafePointer(strdup(handler.name)),
        version: UnsafePointer(strdup(handler.version)),
        preload: Trampolines.preload,
        worker_init: Trampolines.workerInit,
        handle: Trampolines.handle,
        worker_exit: Trampolines.workerExit
    ))
    Exported.descriptor = descriptor
    return UnsafeRawPointer(descriptor)
}

#if DEBUG
/// FORKLIFT_DEBUG_BUILD_SYMBOL: this SDK, hence with SwiftPM the plugin linking it, is a debug
/// build, and the host says so when the plugin preloads much (none of it stays shared).
/// Only a marker for `forklift check` and the host to find: exported by debug builds only;
/// never call it.
@_cdecl("forklift_sdk_debug_build") public func forkliftSDKDebugBuild() {}
#endif

/// This shared object's one exported handler type. Each plugin links its own copy of the SDK,
/// so this global is per plugin. Written once, by `export`, in the host before any fork.
enum Exported {
    nonisolated(unsafe) static var handlerType: (any ForkliftHandler.Type)?
    nonisolated(unsafe) static var descriptor: UnsafeMutablePointer<forklift_plugin>?
}

/// One preloaded instance: the handler and the host API it talks through.
final class Instance {
    let handler: any ForkliftHandler
    let api: UnsafePointer<forklift_host_api>

    init(handler: any ForkliftHandler, api: UnsafePointer<forklift_host_api>) {
        self.handler = handler
        self.api = api
    }
}

/// The C functions the host calls; each turns a Swift error into the ABI's error message.
enum Trampolines {
    static let preload: @convention(c) (UnsafePointer<forklift_host_api>?, UnsafePointer<forklift_plugin_config>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<forklift_error>?) -> Int32 = { api, config, state, failure in
        guard let api, let config, let state, let type = Exported.handlerType else {
            return fail(failure, "the host passed no configuration")
        }
        do {
            state.pointee = try PluginHooks.preload(type, api: api, config: config)
            return Int32(FORKLIFT_OK)
        } catch {
            return fail(failure, "\(error)")
        }
    }

    static let workerInit: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<forklift_error>?) -> Int32 = { state, failure in
        guard let state else { return fail(failure, "preload did not run") }
        do {
            try instance(state).handler.workerInit()
            return Int32(FORKLIFT_OK)
        } catch {
            return fail(failure, "\(error)")
        }
    }

    static let handle: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, OpaquePointer?, UnsafeMutablePointer<forklift_error>?) -> Int32 = { state, request, response, failure in
        guard let state, let request, let response else { return fail(failure, "the host passed no request") }
        let instance = instance(state)
        do {
            try instance.handler.handle(Request(api: instance.api, raw: request), Response(api: instance.api, raw: response))
            return Int32(FORKLIFT_OK)
        } catch {
            return fail(failure, "\(error)")
        }
    }

    static let workerExit: @convention(c) (UnsafeMutableRawPointer?) -> Void = { state in
        guard let state else { return }
        instance(state).handler.workerExit()
    }

    static func instance(_ state: UnsafeMutableRawPointer) -> Instance {
        Unmanaged<Instance>.fromOpaque(state).takeUnretainedValue()
    }

    static func fail(_ error: UnsafeMutablePointer<forklift_error>?, _ message: String) -> Int32 {
        if let error {
            withUnsafeMutableBytes(of: &error.pointee.message) { buffer in
                let bytes = Array(message.utf8.prefix(buffer.count - 1))
                buffer.copyBytes(from: bytes)
                buffer[bytes.count] = 0
            }
        }
        return Int32(FORKLIFT_FAILED)
    }
}

/// The hooks without the one-handler-per-image global, for ForkliftTesting: it preloads a
/// handler type linked into a test and then drives it through the same C hooks a host calls.
@_spi(Testing)
public enum PluginHooks {
    /// What the preload hook does: the initialiser, `warmUp`, the SDK's own warm-up, and the
    /// sealing of shared storage. Returns the state later hooks take.
    public static func preload(_ type: any ForkliftHandler.Type, api: UnsafePointer<forklift_host_api>,
                               config: UnsafePointer<forklift_plugin_config>) throws -> UnsafeMutableRawPointer {
        let handler = try type.init(context: PluginContext(config: config, log: PluginLog(api: api)))
        try handler.warmUp()
        SDKWarmUp.run()
        // Before fork: what the plugin preloaded into shared storage becomes read-only.
        SharedRegions.sealAll(api: api)
        return Unmanaged.passRetained(Instance(handler: handler, api: api)).toOpaque()
    }

    /// A descriptor for `type` whose preload is nil (call `preload` above instead).
    public static func descriptor(for type: any ForkliftHandler.Type) -> forklift_plugin {
        forklift_plugin(abi_version: FORKLIFT_ABI_VERSION, struct_size: UInt32(MemoryLayout<forklift_plugin>.size),
                        name: nil, version: nil, preload: nil, worker_init: Trampolines.workerInit,
                        handle: Trampolines.handle, worker_exit: Trampolines.workerExit)
    }

    /// Releases what `preload` returned.
    public static func release(_ state: UnsafeMutableRawPointer) {
        Unmanaged<Instance>.fromOpaque(state).release()
    }
}
