import ForkliftConfig
import ForkliftIPC
import ForkliftSystem

/// What the scoreboard says, as the shell read it for one event.
struct Observation: Equatable {
    /// The slots with a process in them, by slot.
    var records: [Int: WorkerRecord] = [:]
    /// Connections waiting in the listen queue, when the host measured it.
    var listenQueue: Int?
    /// The master's scaling target in the board (0: none).
    var scaleTarget = 0
}

/// Pool sizing, as PHP-FPM's `fpm_pctl_perform_idle_server_maintenance` does it, once a second.
extension PoolCore {
    /// Workers not told to leave for good (one recycled for its memory is replaced once it
    /// exits, so that the pool never has more than its size), nor leaving of their own accord.
    var staying: [Worker] { workers.values.filter { !$0.leaving && ($0.dismissed == nil || $0.dismissed == .memory) } }

    /// The state its slot says, if the slot is this worker's.
    func state(of worker: Worker, in observation: Observation?) -> WorkerState? {
        guard let record = observation?.records[worker.slot], record.pid == worker.pid else { return nil }
        return record.state
    }

    /// Not serving, and able to soon: idle, or still in worker init.
    func isIdleOrStarting(_ worker: Worker, _ observation: Observation?) -> Bool {
        guard worker.ready != nil else { return true }
        let state = self.state(of: worker, in: observation)
        return state == nil || state == .idle || state == .starting
    }

    /// Workers idle in accept, longest idle first.
    func idleWorkers(_ observation: Observation?) -> [Worker] {
        staying.filter { $0.ready != nil && state(of: $0, in: observation) == .idle }
            .sorted { (observation?.records[$0.slot]?.stateSince.nanoseconds ?? 0) < (observation?.records[$1.slot]?.stateSince.nanoseconds ?? 0) }
    }

    mutating func tick(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        failures.deadlinePassed(now: now)
        if let quiet = listenerQuietUntil, now >= quiet { quietListener(until: nil) }
        guard phase != .stopping else { return [] }
        if let restartAt = responder.restartAt, now >= restartAt { actions += responder.start(now: now) }
        // Not while starting: the first workers must all report, or the start fails.
        if phase == .serving { actions += applyScaleTarget(observation, now: now) }
        actions += proveWorkers(observation, now: now)
        actions += proveStandbys(now: now)
        noteServingStandbys(observation, now: now)
        if memory.isDue(now: now) {
            actions.append(.measureMemory(workers.keys.sorted()))
        }
        if phase == .serving {
            actions += enforceTerminateTimeouts(observation, now: now)
            actions += watchSlowRequests(observation, now: now)
        }
        scheduleRequestWatch(after: now)
        if now >= nextTick {
            // Re-armed in every phase: a past deadline would be a zero timeout, a busy loop.
            scheduleNextTick(after: now)
            if phase == .serving {
                actions += periodicMaintenance(observation, now: now)
                actions += watchBusy(observation, now: now)
            }
        }
        if phase == .serving { actions += maintain(now: now, observation: observation) }
        return actions
    }

    /// What may happen at any moment: a static pool is kept at its size, a worker that left
    /// is replaced (PHP-FPM replaces every child that was not stopped for being idle).
    mutating func maintain(now: MonotonicInstant, observation: Observation?) -> [Action] {
        guard phase == .serving, failures.allowsFork(now: now) else { return [] }
        var actions: [Action] = []
        var planned = staying.count + forksInFlight
        while planned < target, settings.processManager == .static || replacementsOwed > 0, let fork = fork(now: now) {
            actions.append(fork)
            planned += 1
            replacementsOwed = max(0, replacementsOwed - 1)
            // A failed start waits for the back-off before the next one.
            if failures.consecutive > 0 { break }
        }
        if planned >= target { replacementsOwed = 0 }
        return actions
    }

    /// Once a second.
    private mutating func periodicMaintenance(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        switch settings.processManager {
        case .static:
            return trimToTarget(observation)
        case .dynamic:
            return balanceSpares(observation, now: now)
        case .ondemand:
            guard let longest = idleWorkers(observation).first,
                  let since = observation.records[longest.slot]?.stateSince,
                  since.seconds(until: now) >= settings.processIdleTimeout else { return trimToTarget(observation) }
            dismiss(longest.pid, as: .idle)
            return [.signal(longest.pid, .term)]
        }
    }

    /// dynamic: between min_spare_servers and max_spare_servers idle workers.
    private mutating func balanceSpares(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        let idle = idleWorkers(observation)
        let available = staying.filter { isIdleOrStarting($0, observation) }.count + forksInFlight
        let total = staying.count + forksInFlight
        if idle.count > settings.maxSpareServers {
            // One per second, the one idle longest, as PHP-FPM: no flapping after a burst.
            setSpawnRate(1)
            dismiss(idle[0].pid, as: .idle)
            return [.signal(idle[0].pid, .term)] + trimToTarget(observation)
        }
        if total < target { watch.inMaxChildrenEpisode = false } // a fork is possible again
        guard available < settings.minSpareServers else {
            setSpawnRate(1)
            return trimToTarget(observation)
        }
        guard total < target else {
            setSpawnRate(1)
            return maxChildrenReached(observation, wantedMore: true)
        }
        guard failures.allowsFork(now: now) else { return [] }
        let count = min(spawnRate, settings.minSpareServers - available, target - total)
        var actions: [Action] = []
        for _ in 0..<count {
            guard let fork = fork(now: now) else { break }
            actions.append(fork)
        }
        if spawnRate >= 8 {
            actions.append(.log(.warning, "pool \(settings.pool) seems busy (you may need to raise start_servers or min_spare_servers): forking \(count) workers, \(idle.count) idle of \(staying.count)"))
        }
        setSpawnRate(min(spawnRate * 2, settings.maxSpawnRate))
        return actions
    }

    /// More staying workers than the target (after scaling down): the idle ones leave first,
    /// then busy ones, which finish their request.
    private mutating func trimToTarget(_ observation: Observation) -> [Action] {
        let excess = staying.count - target
        guard excess > 0 else { return [] }
        let idle = Set(idleWorkers(observation).map(\.pid))
        let order = staying.sorted { (idle.contains($0.pid) ? 0 : 1, $0.slot) < (idle.contains($1.pid) ? 0 : 1, $1.slot) }
        var actions: [Action] = []
        for worker in order.prefix(excess) {
            dismiss(worker.pid, as: .scaledDown)
            actions.append(.signal(worker.pid, .term))
        }
        return actions
    }

    /// ondemand: a connection waits. PHP-FPM's `fpm_pctl_on_socket_accept`.
    mutating func connectionWaiting(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        guard phase == .serving, settings.processManager == .ondemand else { return [] }
        if forksInFlight > 0 || staying.contains(where: { isIdleOrStarting($0, observation) }) {
            // A worker is about to take it. Look again shortly rather than spin on a listener
            // that stays readable until then.
            quietListener(until: now.advanced(bySeconds: Self.listenerQuietPeriod))
            return []
        }
        guard staying.count + forksInFlight < target else { return maxChildrenReached(observation, wantedMore: true) }
        guard failures.allowsFork(now: now), let fork = fork(now: now) else { return [] }
        quietListener(until: now.advanced(bySeconds: Self.listenerQuietPeriod))
        return [fork]
    }

    static let listenerQuietPeriod = 0.005

    /// The master's scaling target, when it changed: static keeps that many workers, dynamic
    /// and ondemand at most that many.
    private mutating func applyScaleTarget(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        guard noteScaleTarget(observation.scaleTarget), observation.scaleTarget > 0 else { return [] }
        let wanted = max(1, min(observation.scaleTarget, settings.capacity))
        guard wanted != target else { return [] }
        let before = target
        setTarget(wanted)
        let what = settings.processManager == .static ? "workers" : "max_children"
        var actions: [Action] = [.log(.notice, "pool \(settings.pool) gen \(settings.generation) scaled from \(before) to \(wanted) \(what)")]
        actions += trimToTarget(observation)
        return actions
    }

    /// Workers up a while after worker init, or that served, are healthy.
    private mutating func proveWorkers(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        for worker in workers.values where !worker.proven {
            guard let ready = worker.ready else { continue }
            let record = observation.records[worker.slot].flatMap { $0.pid == worker.pid ? $0 : nil }
            guard ready.seconds(until: now) >= Self.provenAfter || (record?.requests ?? 0) > 0 || record?.state.isActive == true else { continue }
            prove(worker.pid)
            if failures.consecutive > 0 || failures.delay > 0 { actions += failures.recovered(pool: settings.pool, pid: worker.pid) }
        }
        return actions
    }
}
