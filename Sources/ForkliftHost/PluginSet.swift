import ForkliftConfig
import ForkliftLogging
import ForkliftSystem
import ForkliftWorker

/// Loads a pool's plugins and runs their preload hooks, checking after each one that the host
/// can still fork safely, so that an error names the plugin that broke it.
enum PluginSet {
    static func load(_ pool: PoolSettings, privateCopies: Bool = true) throws(PluginFailure) -> [PluginInstance] {
        var instances: [PluginInstance] = []
        for settings in pool.plugins {
            let descriptor = try PluginLoader.open(settings, privateCopy: privateCopies)
            let instance = PluginInstance(settings: settings, poolName: pool.name, descriptor: descriptor)
            let started = MonotonicInstant.now()
            try instance.preload()
            try checkForkSafety(after: instance)
            ForkliftLogging.logger.info("plugin \(instance.label) loaded from \(settings.path) for route \(settings.route) in \(Formatting.milliseconds(from: started)) ms")
            instances.append(instance)
        }
        return instances
    }

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
