import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import ForkliftWorker
import Glibc

/// Loads a pool's plugins and runs their preload hooks, checking after each one that the host
/// can still fork safely, so that an error names the plugin that broke it.
enum PluginSet {
    /// `inherited`: the keyed data the running generations hand on; `send` takes what this
    /// host tells the master about keyed data (nothing, without a master).
    static func load(_ pool: PoolSettings, privateCopies: Bool = true, inherited: [InheritedDataSet] = [],
                     send: @escaping SharedDataHost.Send = { _, _ in }) throws(PluginFailure) -> [PluginInstance] {
        let sharedData = SharedDataHost(offered: inherited, send: send)
        SharedDataProviders.current = sharedData
        defer {
            SharedDataProviders.current = nil
            sharedData.finish()
        }
        var instances: [PluginInstance] = []
        for settings in pool.plugins {
            let loaded = try PluginLoader.open(settings, pool: pool.name, privateCopy: privateCopies)
            let instance = PluginInstance(settings: settings, poolName: pool.name, descriptor: loaded.descriptor)
            let started = MonotonicInstant.now()
            let before = loaded.isDebugBuild ? MemoryUsage.of(getpid()) : nil
            try instance.preload()
            try checkForkSafety(after: instance)
            if let before, let after = MemoryUsage.of(getpid()), after.pss - before.pss >= debugBuildWarning {
                ForkliftLogging.logger.warning("plugin \(settings.name) (\(settings.path)) is a debug build and its preload took \(Formatting.mebibytes(after.pss - before.pss)): a debug build does not keep what it preloads shared, every worker may end up with a copy of it (docs/memory.md); build the plugin with swift build -c release")
            }
            ForkliftLogging.logger.info("plugin \(instance.label) loaded from \(settings.path) for route \(settings.route) in \(Formatting.milliseconds(from: started)) ms")
            instances.append(instance)
        }
        return instances
    }

    /// How much a debug build may preload before the host warns that none of it stays shared.
    static let debugBuildWarning = 32 << 20

    static func checkForkSafety(after plugin: PluginInstance) throws(PluginFailure) {
        let threads = SelfInspection.threadCount()
        if threads > 1 {
            throw PluginFailure("plugin \(plugin.settings.name): the host has \(threads) threads after its preload; a process with threads cannot fork safely (use Dispatch, Task or Thread only after worker init)")
        }
        let pending = SelfInspection.unflushedStdioBytes()
        if pending > 0 {
            throw PluginFailure("plugin \(plugin.settings.name): its preload left \(pending) bytes of stdio output unflushed; every worker would print them again (call fflush(stdout) or use the host's log)")
        }
    }
}
