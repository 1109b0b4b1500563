import ForkliftConfig
import ForkliftIPC
import ForkliftSystem
import Glibc

/// What a host decides about its workers, apart from doing it: a plain value that takes
/// events (a worker forked, ready, exited; a signal; the clock with a look at the
/// scoreboard) and returns actions (fork into this slot, signal that pid, report, log).
/// `WorkerPool` is the shell that waits, reads and acts; tests drive this with a mock clock.
///
/// Its timers are derived from its state (`nextDeadline`), so a deadline can never be
/// enforced without being waited for, or the other way round.
struct PoolCore {
    enum Phase: Equatable {
        /// Forking the first workers; ready once they all passed worker init.
        case starting
        case serving
        /// TERM sent to every worker; done when none is left.
        case stopping
    }

    /// Why the host signalled a worker, so that its exit is read right.
    enum Dismissal: Equatable {
        case idle, scaledDown, memory, probe, stop
        /// Killed for running past request_terminate_timeout.
        case terminated
    }

    struct Worker: Equatable {
        let pid: pid_t
        let slot: Int
        let forked: MonotonicInstant
        /// When it passed worker init.
        var ready: MonotonicInstant?
        /// It served a request, or stayed up a while after init: its death is not a failed start.
        var proven = false
        var dismissed: Dismissal?
        /// An ondemand probe: proves worker init at start, then leaves.
        var isProbe = false
        /// It said it is leaving (its loop is over, it serves no more): its replacement is
        /// forked then, while the kernel still tears the old process down, not once it is reaped.
        var leaving = false
    }

    enum Event: Equatable {
        /// Plugins are loaded: fork the first workers.
        case start
        case forked(pid: pid_t, slot: Int)
        case forkFailed(slot: Int, reason: String)
        /// standby_workers: a standby forked (it writes "ready" once past worker init), or not.
        case standbyForked(pid: pid_t)
        case standbyForkFailed(reason: String)
        case workerReady(pid: pid_t)
        case workerInitFailed(pid: pid_t, reason: String)
        /// "serving PID": a released standby waits for connections (the next standby may be forked).
        case standbyServing(pid: pid_t)
        /// "leaving PID": the worker left its request loop of its own accord (max_requests, a
        /// stop signal that was not the host's) and exits next.
        case workerLeaving(pid: pid_t)
        /// `served`: it accepted at least one request; `active`: it died in the middle of one,
        /// `request` (as its slot said: "GET /x (plugin p, 0.3 s in)").
        case workerExited(pid: pid_t, status: ExitStatus, served: Bool, active: Bool, request: String? = nil)
        /// The master made the generation live.
        case goLive
        case stop
        /// Time passed; `Observation` is what the scoreboard says now.
        case tick(Observation)
        /// ondemand: the listener has a connection waiting.
        case connectionWaiting(Observation)
        case memoryMeasured(host: MemoryUsage?, workers: [pid_t: MemoryUsage], at: MonotonicInstant)
        /// The status_listen responder.
        case responderForked(pid: pid_t)
        case responderForkFailed(reason: String)
        case responderExited(pid: pid_t, status: ExitStatus)
        /// A worker's backtrace, its frames already named: `crash` (it is dying of `signal`) or
        /// `stack` (it was asked, and goes on).
        case backtrace(pid: pid_t, kind: String, signal: UnixSignal, frames: [String])
    }

    enum Action: Equatable {
        case fork(slot: Int)
        /// Fork a standby worker (no slot: it takes one when it is released).
        case forkStandby
        /// A standby takes this slot and serves: in place of `.fork(slot:)`, the worker already in `workers`.
        case releaseStandby(pid: pid_t, slot: Int)
        case signal(pid_t, UnixSignal)
        case openGate
        /// Every first worker passed worker init: tell the master (the shell adds the summary).
        case reportReady
        case report(HostReport)
        case log(LogLevel, String)
        case publish(HostState)
        case measureMemory([pid_t])
        case storeMemory(slot: Int, pid: pid_t, MemoryUsage)
        case storeHostMemory(MemoryUsage)
        case countMaxChildrenReached
        case countSlowRequest
        /// A slow request's record, for the slow log (the error log if none is set).
        case slowlog(String)
        /// Fork the process that answers status_listen.
        case forkResponder
        /// Every worker is gone and the host may leave with this status.
        case exit(Int32)
    }

    let settings: Settings
    let hostPID: pid_t
    private(set) var phase = Phase.starting
    private(set) var isLive = false
    private(set) var workers: [pid_t: Worker] = [:]
    private var freeSlots: [Int]
    private(set) var highWater = 0
    /// Forks asked for whose pid has not come back yet: they count as workers, or two exits
    /// reaped together would each fork a replacement for the same place.
    private(set) var forksInFlight = 0
    /// static: the workers to keep; dynamic and ondemand: the ceiling. Scaling moves it.
    private(set) var target: Int
    private var lastScaleTarget = 0
    var failures = StartFailures()
    var emergency: EmergencyWindow
    var watch = BusyWatch()
    var memory: MemorySchedule
    /// dynamic: forks per tick, doubling while idle workers are short (PHP-FPM's idle_spawn_rate).
    private(set) var spawnRate = 1
    private(set) var nextTick: MonotonicInstant
    /// With a request timeout set: when the board is next read for slow and overdue requests.
    private(set) var nextRequestWatch: MonotonicInstant?
    /// ondemand: an idle or starting worker will take the waiting connection; look again then.
    private(set) var listenerQuietUntil: MonotonicInstant?
    /// dynamic and ondemand: workers that left (retired, died) and are replaced at once.
    var replacementsOwed = 0
    /// The scoreboard as last observed (for idle counts between ticks).
    private(set) var lastObservation: Observation?
    var responder = ResponderLife()
    /// standby_workers: forked ahead, each takes the place of the next worker forked.
    var standbys = Standbys()
    /// Standbys that took a worker's place, in this host's life (the state dump says).
    private(set) var releasedStandbys = 0
    /// Requests past request_terminate_timeout: when each one's worker gets KILL.
    var terminating: [pid_t: MonotonicInstant] = [:]
    /// Why a worker was asked for its stack, to say so when it arrives.
    var stackRequests: [pid_t: String] = [:]
    private var startFailure: String?
    private var exitStatus: Int32 = 0

    static let tickInterval = 1.0
    /// A worker up this long after its worker init is healthy: its death is not a failed start.
    static let provenAfter = 1.0

    init(settings: Settings, hostPID: pid_t, now: MonotonicInstant) {
        self.settings = settings
        self.hostPID = hostPID
        freeSlots = Array((0..<settings.capacity).reversed())
        target = settings.maxChildren
        emergency = EmergencyWindow(threshold: settings.emergencyThreshold, interval: settings.emergencyInterval)
        memory = MemorySchedule(settings: settings, now: now)
        nextTick = now.advanced(bySeconds: Self.tickInterval)
        nextRequestWatch = settings.requestWatchInterval.map { now.advanced(bySeconds: $0) }
    }

    // MARK: - Events

    mutating func handle(_ event: Event, now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .start:
            actions += forkInitialWorkers(now: now)
        case .forked(let pid, let slot):
            forksInFlight = max(0, forksInFlight - 1)
            workers[pid] = Worker(pid: pid, slot: slot, forked: now)
            if phase == .stopping {
                // Asked for just before the stop (a replacement): it leaves with the others.
                workers[pid]?.dismissed = .stop
                actions.append(.signal(pid, .term))
            }
        case .forkFailed(let slot, let reason):
            forksInFlight = max(0, forksInFlight - 1)
            freeSlots.append(slot)
            actions += forkFailed(reason, now: now)
        case .standbyForked(let pid):
            actions += standbyForked(pid, now: now)
        case .standbyForkFailed(let reason):
            standbys.forkFailed()
            actions += forkFailed(reason, now: now)
        case .workerReady(let pid) where standbys.contains(pid):
            actions += standbyReady(pid, now: now)
        case .workerReady(let pid):
            actions += workerReady(pid, now: now)
        case .workerInitFailed(let pid, let reason):
            actions += workerInitFailed(pid, reason: reason, now: now)
        case .standbyServing(let pid):
            standbys.serving(pid, now: now)
        case .workerLeaving(let pid):
            actions += workerLeaving(pid, now: now)
        case .workerExited(let pid, let status, _, _, _) where standbys.contains(pid):
            actions += standbyExited(pid, status: status, now: now)
        case .workerExited(let pid, let status, let served, let active, let request):
            actions += workerExited(pid, status: status, served: served, active: active, request: request, now: now)
        case .goLive:
            guard !isLive else { break }
            isLive = true
            actions.append(.openGate)
            actions.append(.log(.info, "pool \(settings.pool) gen \(settings.generation) is live: workers accept connections"))
            // Only the live generation answers status_listen.
            if settings.hasStatusListen && phase == .serving { actions += responder.start(now: now) }
        case .backtrace(let pid, let kind, let signal, let frames):
            actions += backtrace(pid, kind: kind, signal: signal, frames: frames)
        case .responderForked(let pid):
            responder.forked(pid)
        case .responderForkFailed(let reason):
            actions += responder.failed("cannot fork the status_listen responder: \(reason)", now: now)
        case .responderExited(let pid, let status):
            guard responder.pid == pid else { break }
            actions += phase == .stopping ? responder.exitedWhileStopping() : responder.failed("the status_listen responder \(pid) \(status)", now: now)
        case .stop:
            actions += beginStop()
        case .tick(let observation):
            lastObservation = observation
            actions += tick(observation, now: now)
        case .connectionWaiting(let observation):
            lastObservation = observation
            actions += connectionWaiting(observation, now: now)
        case .memoryMeasured(let host, let usages, let at):
            actions += memoryMeasured(host: host, workers: usages, at: at)
        }
        actions += keepStandbys(now: now)
        actions += finishIfDone()
        actions.append(.publish(publishedState(now: now)))
        return actions
    }

    /// When the shell must call `tick` next, whatever else happens.
    var nextDeadline: MonotonicInstant? {
        guard phase != .stopping else { return nil } // nothing is timed while stopping: the master's die_timeout is
        return ([nextTick, nextRequestWatch, failures.backoffUntil, memory.nextDue, listenerQuietUntil, responder.restartAt, standbyForkDeadline]
            + requestDeadlines).compactMap { $0 }.min()
    }

    /// ondemand: whether the shell should wake when the listener has a connection.
    func watchesListener(now: MonotonicInstant) -> Bool {
        guard settings.processManager == .ondemand, isLive, phase == .serving, workers.count < target else { return false }
        if let quiet = listenerQuietUntil, now < quiet { return false }
        return failures.backoffUntil.map { now >= $0 } ?? true
    }

    var isStopping: Bool { phase == .stopping }

    // MARK: - Forking

    /// Reserves a slot and asks for a fork, or releases a standby into it (a worker past its
    /// worker init from now on); nil when no slot is left.
    mutating func fork(now: MonotonicInstant) -> Action? {
        guard let slot = freeSlots.popLast() else { return nil }
        highWater = max(highWater, slot + 1)
        if phase == .serving, let standby = standbys.take() {
            workers[standby.pid] = Worker(pid: standby.pid, slot: slot, forked: standby.forked, ready: standby.ready ?? now, proven: standby.proven)
            releasedStandbys += 1
            return .releaseStandby(pid: standby.pid, slot: slot)
        }
        forksInFlight += 1
        return .fork(slot: slot)
    }

    /// A slot whose fork just failed or whose worker was reaped.
    mutating func release(slot: Int) {
        freeSlots.append(slot)
    }

    private mutating func forkInitialWorkers(now: MonotonicInstant) -> [Action] {
        let count: Int
        switch settings.processManager {
        case .static: count = target
        case .dynamic: count = settings.startServers
        case .ondemand: count = 1 // a probe: worker init is proven before the generation goes live
        }
        var actions: [Action] = []
        for _ in 0..<count {
            guard let action = fork(now: now) else { break }
            actions.append(action)
        }
        return actions
    }

    private mutating func forkFailed(_ reason: String, now: MonotonicInstant) -> [Action] {
        if phase == .starting {
            return failStart("pool \(settings.pool): cannot fork a worker: \(reason)")
        }
        failures.forkFailed(now: now)
        return [.log(.error, "pool \(settings.pool): cannot fork a worker: \(reason); trying again in \(Formatting.oneDecimal(failures.delay)) s")]
    }

    private mutating func workerReady(_ pid: pid_t, now: MonotonicInstant) -> [Action] {
        guard var worker = workers[pid], worker.ready == nil else { return [] }
        worker.ready = now
        var actions: [Action] = [.log(.debug, "worker \(pid) ready \(Formatting.milliseconds(from: worker.forked, to: now)) ms after fork")]
        if phase == .starting && settings.processManager == .ondemand && workers.count == 1 {
            worker.isProbe = true
            worker.dismissed = .probe
            actions.append(.signal(pid, .term))
        }
        workers[pid] = worker
        if phase == .starting && workers.values.allSatisfy({ $0.ready != nil }) {
            phase = .serving
            actions.append(.reportReady)
        }
        return actions
    }

    private mutating func workerInitFailed(_ pid: pid_t, reason: String, now: MonotonicInstant) -> [Action] {
        if phase == .starting { return failStart(reason) }
        failures.reasons[pid] = reason
        return []
    }

    /// A failure before the generation was ready: report it, stop the others, leave with 1.
    private mutating func failStart(_ reason: String) -> [Action] {
        guard phase == .starting else { return [] }
        startFailure = reason
        exitStatus = 1
        return [.log(.error, reason), .report(.failed(reason: reason))] + beginStop()
    }

    private mutating func beginStop() -> [Action] {
        guard phase != .stopping else { return [] }
        phase = .stopping
        var actions: [Action] = [.log(.info, "stopping \(workers.count) workers of pool \(settings.pool) gen \(settings.generation)")]
        for pid in workers.keys.sorted() {
            if workers[pid]?.dismissed == nil { workers[pid]?.dismissed = .stop }
            actions.append(.signal(pid, .term))
        }
        actions += standbys.dismissAll().map { .signal($0, .term) }
        return actions + responder.stop()
    }

    private func finishIfDone() -> [Action] {
        // A fork asked for and not answered yet is a process the host would leave behind.
        guard phase == .stopping, workers.isEmpty, standbys.isEmpty, forksInFlight == 0, standbys.forksInFlight == 0,
              responder.pid == nil else { return [] }
        return [.log(.info, "all workers of pool \(settings.pool) gen \(settings.generation) have exited"), .exit(exitStatus)]
    }

    // MARK: - Exits

    /// A worker that leaves on its own is replaced as soon as it says so: from its exit to
    /// its reap the kernel spends most of a millisecond unmapping it, and the pool is a
    /// worker short meanwhile. Only a worker the pool would replace at its exit (not one told
    /// to leave, nor one recycled for its memory, whose replacement waits so that the pool
    /// never holds more than its size), and only with a slot free for the new one (the board
    /// has twice max_children); otherwise the replacement waits for the reap, as before.
    private mutating func workerLeaving(_ pid: pid_t, now: MonotonicInstant) -> [Action] {
        guard phase == .serving, var worker = workers[pid], !worker.leaving, worker.dismissed == nil else { return [] }
        worker.leaving = true
        workers[pid] = worker
        replacementsOwed += 1
        return maintain(now: now, observation: lastObservation)
    }

    private mutating func workerExited(_ pid: pid_t, status: ExitStatus, served: Bool, active: Bool, request: String?,
                                       now: MonotonicInstant) -> [Action] {
        standbys.serving(pid, now: now) // a released standby that died before it said so
        guard let worker = workers.removeValue(forKey: pid) else { return [] }
        defer {
            failures.reasons[pid] = nil
            terminating[pid] = nil
            stackRequests[pid] = nil
        }
        release(slot: worker.slot)
        memory.forget(pid)
        if phase == .stopping { return [] }
        if phase == .starting && !worker.isProbe && worker.dismissed == nil {
            // Lines first: a worker whose init failed wrote its reason before exiting.
            return failStart(startFailure ?? "pool \(settings.pool): worker \(pid) \(status) during worker init")
        }
        var actions: [Action] = []
        let lived = worker.forked.seconds(until: now)
        switch (status, worker.dismissed) {
        case (.exited(0), .probe?):
            actions.append(.log(.debug, "worker \(pid) proved worker init and left: ondemand forks workers as connections come"))
        case (.exited(0), .memory?):
            actions.append(.log(.info, "worker \(pid) left after exceeding max_private_memory; replacing it"))
        case (.exited(0), .idle?):
            actions.append(.log(.info, "worker \(pid) left after being idle (pm = \(settings.processManager.rawValue))"))
        case (.signaled, .terminated?):
            actions.append(.log(.error, "worker \(pid) was killed for running past request_terminate_timeout; replacing it"))
        case (.exited(0), .scaledDown?):
            actions.append(.log(.info, "worker \(pid) left: the pool was scaled down to \(target)"))
        case (.exited(0), _):
            actions.append(.log(.info, "worker \(pid) retired after serving its requests; \(worker.leaving ? "its replacement was started as it left" : "replacing it")"))
        default:
            let died = served || worker.proven
                ? "worker \(pid) \(status) after \(Formatting.oneDecimal(lived)) s\(active ? " in the middle of a request" + (request.map { ": \($0)" } ?? "") : "")"
                : "worker \(pid) \(status == .exited(3) ? "failed its worker init" : "\(status)") right after it started"
            if served || worker.proven {
                // It worked, then died: replace it at once (a request that kills workers must
                // not keep the pool down).
                actions.append(.log(.error, "\(died); replacing it"))
            } else {
                actions += failures.failedStart(pool: settings.pool, pid: pid, description: died, now: now)
            }
            if case .signaled(let signal, _) = status, EmergencyWindow.isCrash(signal), let reason = emergency.record(now: now) {
                actions.append(.log(.error, "pool \(settings.pool): \(reason): asking the master for a fresh host (emergency_restart_threshold)"))
                actions.append(.report(.emergencyRestart(reason: reason)))
            }
        }
        if phase == .serving {
            // One that said it was leaving is owed already (and its replacement maybe forked).
            if !worker.leaving && worker.dismissed != .idle && worker.dismissed != .scaledDown && worker.dismissed != .probe { replacementsOwed += 1 }
            actions += maintain(now: now, observation: lastObservation)
        }
        return actions
    }

    // MARK: - Published state

    func publishedState(now: MonotonicInstant) -> HostState {
        let condition: HostState.Condition = phase == .stopping ? .stopping : failures.isBackingOff ? .backingOff : .normal
        return HostState(hostPID: hostPID, condition: condition, consecutiveFailures: failures.consecutive,
                         backoffUntil: failures.backoffUntil, allBusySince: watch.allBusySince, workerTarget: target,
                         highWater: highWater,
                         // No worker is coming: none may be forked, and none is being forked or in worker init.
                         // A released standby is on its way until it says "serving".
                         atCeiling: staying.count + forksInFlight >= target && forksInFlight == 0
                             && staying.allSatisfy { $0.ready != nil && !standbys.starting.contains($0.pid) },
                         standbyWorkers: standbys.waiting)
    }

    /// What a state dump says about this host.
    func dumpLines(now: MonotonicInstant) -> [String] {
        var lines = ["pool \(settings.pool) gen \(settings.generation) host \(hostPID): phase \(phase), \(isLive ? "live" : "gated"), pm \(settings.processManager.rawValue), target \(target), \(workers.count) workers, spawn rate \(spawnRate), \(failures.summary(now: now))\(settings.standbyWorkers > 0 ? ", \(standbys.count) of \(settings.standbyWorkers) standby workers (\(releasedStandbys) took a place so far)" : "")"]
        for worker in workers.values.sorted(by: { $0.slot < $1.slot }) {
            let ready = worker.ready.map { "ready \(Formatting.oneDecimal($0.seconds(until: now))) s ago" } ?? "in worker init"
            lines.append("  worker \(worker.pid) slot \(worker.slot): forked \(Formatting.oneDecimal(worker.forked.seconds(until: now))) s ago, \(ready)\(worker.dismissed.map { ", dismissed (\($0))" } ?? "")\(worker.leaving ? ", leaving" : "")")
        }
        for standby in standbys.byPID.values.sorted(by: { $0.pid < $1.pid }) {
            let ready = standby.ready.map { "waiting for \(Formatting.oneDecimal($0.seconds(until: now))) s" } ?? "in worker init"
            lines.append("  standby worker \(standby.pid): forked \(Formatting.oneDecimal(standby.forked.seconds(until: now))) s ago, \(ready)\(standby.dismissed ? ", dismissed" : "")")
        }
        return lines
    }

    // MARK: - For the sizing and watch extensions

    mutating func setTarget(_ value: Int) { target = value }
    mutating func noteScaleTarget(_ value: Int) -> Bool {
        guard value != lastScaleTarget else { return false }
        lastScaleTarget = value
        return true
    }
    mutating func setSpawnRate(_ value: Int) { spawnRate = value }
    mutating func scheduleNextTick(after now: MonotonicInstant) { nextTick = now.advanced(bySeconds: Self.tickInterval) }
    /// Every tick reads the board, so the next look for slow requests is due an interval later.
    mutating func scheduleRequestWatch(after now: MonotonicInstant) { nextRequestWatch = settings.requestWatchInterval.map { now.advanced(bySeconds: $0) } }
    mutating func quietListener(until instant: MonotonicInstant?) { listenerQuietUntil = instant }
    mutating func dismiss(_ pid: pid_t, as reason: Dismissal) { workers[pid]?.dismissed = reason }
    mutating func prove(_ pid: pid_t) { workers[pid]?.proven = true }
}
