import ForkliftConfig
import ForkliftSystem

extension PoolCore {
    /// What the core needs of the configuration, flattened.
    struct Settings: Equatable {
        var pool: String
        var generation: Int
        var processManager: ProcessManager
        var maxChildren: Int
        var startServers: Int
        var minSpareServers: Int
        var maxSpareServers: Int
        var maxSpawnRate: Int
        var processIdleTimeout: Double
        /// Workers held past worker init, to take a place at once when the pool forks one.
        var standbyWorkers: Int
        /// Slots in the board: the ceiling for scaling up.
        var capacity: Int
        var emergencyThreshold: Int
        var emergencyInterval: Double
        var allBusyWarning: Double
        var slowlogTimeout: Double
        var maxPrivateMemory: Int
        var memoryLogInterval: Double
        var hasStatusListen: Bool
        /// request_terminate_timeout of the pool (0: none), and of plugins that set their own.
        var terminateTimeout: Double
        var pluginTerminateTimeouts: [String: Double]

        init(pool: PoolSettings, global: GlobalSettings, generation: Int, capacity: Int) {
            self.pool = pool.name
            self.generation = generation
            processManager = pool.processManager
            maxChildren = pool.maxChildren
            startServers = pool.startServers
            minSpareServers = pool.minSpareServers
            maxSpareServers = pool.maxSpareServers
            maxSpawnRate = pool.maxSpawnRate
            processIdleTimeout = pool.processIdleTimeout
            standbyWorkers = pool.standbyWorkers
            self.capacity = capacity
            emergencyThreshold = global.emergencyRestartThreshold
            emergencyInterval = global.emergencyRestartInterval
            allBusyWarning = pool.allBusyWarning
            slowlogTimeout = pool.requestSlowlogTimeout
            maxPrivateMemory = pool.maxPrivateMemory
            memoryLogInterval = pool.memoryLogInterval
            hasStatusListen = pool.statusListen != nil
            terminateTimeout = pool.requestTerminateTimeout
            var plugins: [String: Double] = [:]
            for plugin in pool.plugins { if let own = plugin.requestTerminateTimeout { plugins[plugin.name] = own } }
            pluginTerminateTimeouts = plugins
        }

        /// How often the board is read for requests past a timeout, when a timeout is set: a
        /// third of the shortest one, between 0.13 s and the 1 s tick (PHP-FPM's heartbeat), so
        /// a request that starts and ends between two ticks is still seen.
        var requestWatchInterval: Double? {
            let timeouts = ([slowlogTimeout, terminateTimeout] + pluginTerminateTimeouts.values).filter { $0 > 0 }
            return timeouts.min().map { min(PoolCore.tickInterval, max(0.13, $0 / 3)) }
        }

        /// The request_terminate_timeout of a request the slot says runs `plugin` (0: none).
        func terminateTimeout(plugin: String) -> Double { pluginTerminateTimeouts[plugin] ?? terminateTimeout }
    }

    /// Slots a generation's board has: room for scaling up to twice `max_children`.
    static func capacity(for pool: PoolSettings) -> Int { pool.maxChildren * 2 }
}
