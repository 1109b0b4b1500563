import ForkliftConfig
import ForkliftIPC
import ForkliftSystem

/// Episodes worth one log line each: every worker busy for too long, the pool at
/// max_children with connections waiting, a request running past request_slowlog_timeout.
struct BusyWatch: Equatable {
    var allBusySince: MonotonicInstant?
    var warnedAllBusy = false
    var inMaxChildrenEpisode = false
    /// Requests already counted slow: (pid, start).
    var slowRequests: Set<SlowRequest> = []

    struct SlowRequest: Hashable {
        let pid: Int32
        let started: UInt64
    }
}

extension PoolCore {
    mutating func watchBusy(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        // A worker on a kept connection gives it up for a new client when nobody else can take
        // one (see AcceptLoop): for these warnings it is not busy.
        let serving = staying.filter { state(of: $0, in: observation)?.isActive == true && state(of: $0, in: observation) != .kept }
        let anyFree = staying.contains { isIdleOrStarting($0, observation) || state(of: $0, in: observation) == .kept }
        // Every worker busy, and no more may be forked: clients wait.
        if !staying.isEmpty && !anyFree && serving.count == staying.count && staying.count >= target {
            let since = watch.allBusySince ?? now
            watch.allBusySince = since
            let busyFor = since.seconds(until: now)
            if settings.allBusyWarning > 0 && busyFor >= settings.allBusyWarning && !watch.warnedAllBusy {
                watch.warnedAllBusy = true
                let longest = serving.compactMap { worker -> (Worker, WorkerRecord)? in
                    observation.records[worker.slot].map { (worker, $0) }
                }.max { ($0.1.requestAge(at: now) ?? 0) < ($1.1.requestAge(at: now) ?? 0) }
                let detail = longest.map { " (the longest: worker \($0.0.pid), \($0.1.method) \($0.1.uri), for \(Formatting.oneDecimal($0.1.requestAge(at: now) ?? 0)) s)" } ?? ""
                actions.append(.log(.warning, "pool \(settings.pool): all \(staying.count) workers have been busy for \(Formatting.oneDecimal(busyFor)) s\(detail); new connections wait in the listen queue"))
            }
        } else if let since = watch.allBusySince {
            if watch.warnedAllBusy {
                actions.append(.log(.notice, "pool \(settings.pool): a worker is free again after \(Formatting.oneDecimal(since.seconds(until: now))) s with every worker busy"))
            }
            watch.allBusySince = nil
            watch.warnedAllBusy = false
        }
        // Out of workers with clients waiting. The episode ends as PHP-FPM's warn_max_children
        // does: a static pool's when a worker is free, the others' once another fork is possible.
        if staying.count + forksInFlight < target || (settings.processManager == .static && anyFree) {
            watch.inMaxChildrenEpisode = false
        } else if !anyFree && (observation.listenQueue ?? 0) > 0 {
            actions += maxChildrenReached(observation, wantedMore: false)
        }
        return actions
    }

    /// Once per episode (until a worker is free again): counted, and one warning.
    mutating func maxChildrenReached(_ observation: Observation?, wantedMore: Bool) -> [Action] {
        guard !watch.inMaxChildrenEpisode else { return [] }
        watch.inMaxChildrenEpisode = true
        let waiting = observation?.listenQueue.map { ", \($0) connections wait in the listen queue" } ?? ""
        let what = settings.processManager == .static ? "all \(target) workers are busy"
            : wantedMore ? "the pool reached max_children (\(target)) and wants more workers" : "the pool reached max_children (\(target)) and every worker is busy"
        return [.countMaxChildrenReached,
                .log(.warning, "pool \(settings.pool): \(what)\(waiting); consider raising max_children")]
    }

    /// On every tick (a request watch is due at least every `requestWatchInterval`).
    mutating func watchSlowRequests(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        guard settings.slowlogTimeout > 0 else { return [] }
        var actions: [Action] = []
        var current: Set<BusyWatch.SlowRequest> = []
        for worker in workers.values {
            guard let record = observation.records[worker.slot], record.pid == worker.pid, record.state.isInRequest,
                  let age = record.requestAge(at: now) else { continue }
            let request = BusyWatch.SlowRequest(pid: worker.pid, started: record.requestStarted.nanoseconds)
            guard age >= settings.slowlogTimeout else { continue }
            current.insert(request)
            guard !watch.slowRequests.contains(request) else { continue }
            actions.append(.countSlowRequest)
            let what = "pool \(settings.pool): slow request: worker \(worker.pid) has run \(record.method) \(record.uri) (plugin \(record.plugin.isEmpty ? "-" : record.plugin)) for \(Formatting.oneDecimal(age)) s (request_slowlog_timeout \(Formatting.seconds(settings.slowlogTimeout)))"
            actions.append(.log(.warning, what))
            // Its stack, from the worker itself (no ptrace); logged when it arrives.
            stackRequests[worker.pid] = what
            actions.append(.signal(worker.pid, .dump))
        }
        watch.slowRequests = current
        return actions
    }
}

/// When the host measures its workers' memory: every second with max_private_memory, every
/// memory_log_interval for the log, and every 10 s for the status page, which shows the last
/// sample rather than reading /proc per request.
struct MemorySchedule: Equatable {
    static let checkInterval = 1.0
    static let sampleInterval = 10.0

    let maxPrivateMemory: Int
    let logInterval: Double
    private(set) var nextCheck: MonotonicInstant?
    private(set) var nextLog: MonotonicInstant?
    private(set) var nextSample: MonotonicInstant
    /// What the measurement in flight is for.
    private(set) var checking = false
    private(set) var logging = false
    /// Workers told to leave for their memory.
    private(set) var recycled: Set<Int32> = []

    init(settings: PoolCore.Settings, now: MonotonicInstant) {
        maxPrivateMemory = settings.maxPrivateMemory
        logInterval = settings.memoryLogInterval
        if maxPrivateMemory > 0 { nextCheck = now.advanced(bySeconds: Self.checkInterval) }
        if logInterval > 0 { nextLog = now.advanced(bySeconds: logInterval) }
        nextSample = now.advanced(bySeconds: 1)
    }

    var nextDue: MonotonicInstant? { [nextCheck, nextLog, nextSample].compactMap { $0 }.min() }

    /// Whether to measure now; moves every due time on.
    mutating func isDue(now: MonotonicInstant) -> Bool {
        guard let due = nextDue, now >= due else { return false }
        if let check = nextCheck, now >= check {
            checking = true
            nextCheck = now.advanced(bySeconds: Self.checkInterval)
        }
        if let log = nextLog, now >= log {
            logging = true
            nextLog = now.advanced(bySeconds: logInterval)
        }
        nextSample = now.advanced(bySeconds: Self.sampleInterval)
        return true
    }

    mutating func measured() -> (check: Bool, log: Bool) {
        defer { checking = false; logging = false }
        return (checking, logging)
    }

    mutating func recycle(_ pid: Int32) { recycled.insert(pid) }
    mutating func forget(_ pid: Int32) { recycled.remove(pid) }
}

extension PoolCore {
    mutating func memoryMeasured(host: MemoryUsage?, workers usages: [Int32: MemoryUsage], at now: MonotonicInstant) -> [Action] {
        let (check, log) = memory.measured()
        var actions: [Action] = []
        for (pid, usage) in usages.sorted(by: { $0.key < $1.key }) {
            guard let worker = workers[pid] else { continue }
            actions.append(.storeMemory(slot: worker.slot, pid: pid, usage))
            if check && usage.privateDirty > memory.maxPrivateMemory && !memory.recycled.contains(pid) && worker.dismissed == nil {
                memory.recycle(pid)
                dismiss(pid, as: .memory)
                actions.append(.log(.warning, "worker \(pid) has \(Formatting.mebibytes(usage.privateDirty)) of private memory (Private_Dirty), above max_private_memory (\(Formatting.mebibytes(memory.maxPrivateMemory))): it finishes its request and is replaced"))
                actions.append(.signal(pid, .term))
            }
            if log { actions.append(.log(.info, "memory of worker \(pid): \(usage.description)")) }
        }
        if let host { actions.append(.storeHostMemory(host)) }
        if log {
            let total = usages.values.reduce(host ?? MemoryUsage(), +)
            actions.append(.log(.notice, "memory of pool \(settings.pool) gen \(settings.generation) (host and \(usages.count) workers): \(total.description)"))
        }
        return actions
    }
}
