import ForkliftConfig
import ForkliftLogging
import ForkliftSystem
import Glibc

/// Watches how much of the preloaded memory the workers still share.
///
/// - Every `memory_log_interval`, logs each worker's Pss, Private_Dirty, Shared_Clean and
///   Shared_Dirty, and the generation's total (host included).
/// - With `max_private_memory`, checks every second: a worker whose Private_Dirty is above
///   the limit is TERMed — it finishes the request in flight and is replaced — like uWSGI's
///   reload-on-rss, but measured on what actually stopped being shared.
struct MemoryWatch {
    static let checkInterval = 1.0

    let pool: PoolSettings
    let generation: Int
    private var nextCheck: MonotonicInstant?
    private var nextLog: MonotonicInstant?
    /// Workers told to leave for their memory, so their exit is logged as such.
    private(set) var recycled: Set<pid_t> = []

    init(pool: PoolSettings, generation: Int, now: MonotonicInstant = .now()) {
        self.pool = pool
        self.generation = generation
        if pool.maxPrivateMemory > 0 { nextCheck = now.advanced(bySeconds: Self.checkInterval) }
        if pool.memoryLogInterval > 0 { nextLog = now.advanced(bySeconds: pool.memoryLogInterval) }
    }

    var nextDeadline: MonotonicInstant? { [nextCheck, nextLog].compactMap { $0 }.min() }

    /// Returns the workers to recycle now.
    mutating func tick(workers: [pid_t], now: MonotonicInstant = .now()) -> [pid_t] {
        var toRecycle: [pid_t] = []
        if let due = nextCheck, now >= due {
            nextCheck = now.advanced(bySeconds: Self.checkInterval)
            for pid in workers where !recycled.contains(pid) {
                guard let usage = MemoryUsage.of(pid), usage.privateDirty > pool.maxPrivateMemory else { continue }
                ForkliftLogging.logger.warning("worker \(pid) has \(Formatting.mebibytes(usage.privateDirty)) of private memory (Private_Dirty), above max_private_memory (\(Formatting.mebibytes(pool.maxPrivateMemory))): it finishes its request and is replaced")
                recycled.insert(pid)
                toRecycle.append(pid)
            }
        }
        if let due = nextLog, now >= due {
            nextLog = now.advanced(bySeconds: pool.memoryLogInterval)
            logUsage(workers: workers)
        }
        return toRecycle
    }

    mutating func forget(_ pid: pid_t) { recycled.remove(pid) }

    private func logUsage(workers: [pid_t]) {
        var total = MemoryUsage.of(getpid()) ?? MemoryUsage()
        for pid in workers.sorted() {
            guard let usage = MemoryUsage.of(pid) else { continue }
            total = total + usage
            ForkliftLogging.logger.info("memory of worker \(pid): \(usage.description)")
        }
        ForkliftLogging.logger.notice("memory of pool \(pool.name) gen \(generation) (host and \(workers.count) workers): \(total.description)")
    }
}
