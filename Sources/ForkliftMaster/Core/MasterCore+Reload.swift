import ForkliftConfig
import ForkliftIPC
import ForkliftSystem
import Glibc

/// Reloads as transactions: every pool gets a new generation; all of them go live together
/// once all are ready, or none does.
extension MasterCore {
    /// A reload from the files (HUP, USR2, `forklift reload`): read them first.
    mutating func requestReload(waiter: ClientID?) -> [Action] {
        if let refusal = reloadRefusal() {
            return [.log(.error, "reload refused: \(refusal)")] + (waiter.map { [.answer($0, ok: false, refusal)] } ?? [])
        }
        if transaction != nil || switchInFlight != nil || reloadPending {
            // One at a time. The next one re-reads the files once this one is over: the
            // plugin files may have changed since this one copied them.
            reloadPending = true
            if let waiter { pendingReloadWaiters.append(waiter) }
            return []
        }
        if let waiter { pendingReloadWaiters.append(waiter) }
        reloadPending = true
        return [.readConfiguration]
    }

    private func reloadRefusal() -> String? {
        if phase == .stopping { return "forklift is stopping" }
        if upgrade != nil { return "a binary upgrade is in progress; reload once it is done" }
        if phase == .starting { return "forklift is still starting" }
        return nil
    }

    mutating func configurationRead(_ result: Result<Configuration, ConfigurationError>, now: MonotonicInstant) -> [Action] {
        guard reloadPending else { return [] }
        reloadPending = false
        let waiters = pendingReloadWaiters
        pendingReloadWaiters = []
        switch result {
        case .success(let fresh):
            return beginReload(fresh, initial: false, waiters: waiters, now: now)
        case .failure(let error):
            let reason = "configuration error: \(error)"
            return [.log(.error, "reload refused, the running generations keep serving: \(reason)")]
                + waiters.map { .answer($0, ok: false, reason) }
        }
    }

    mutating func beginReload(_ fresh: Configuration, initial: Bool, waiter: ClientID?, now: MonotonicInstant) -> [Action] {
        beginReload(fresh, initial: initial, waiters: waiter.map { [$0] } ?? [], now: now)
    }

    mutating func beginReload(_ fresh: Configuration, initial: Bool, waiters: [ClientID], now: MonotonicInstant) -> [Action] {
        if !initial, let refusal = reloadRefusal() {
            return waiters.map { .answer($0, ok: false, refusal) }
        }
        var candidate = ReloadTransaction(configuration: fresh, isInitial: initial, now: now)
        candidate.waiters = waiters
        transaction = candidate
        return [.acquireListeners(fresh.pools)]
    }

    mutating func listenersAcquired(_ opened: [ListenAddress], now: MonotonicInstant) -> [Action] {
        guard var current = transaction else { return [.closeOpenedListeners(opened)] }
        current.openedAddresses = opened
        transaction = current
        var actions: [Action] = []
        for pool in current.configuration.pools {
            let loading = current.isInitial && !isHandoff ? false : mayLoadInBackground && current.configuration.global.backgroundLoading > 0
                && BackgroundLoading.allowed(for: pool.privileges, changesUser: changesUsers, niceHardLimit: niceHardLimit, inheritedNice: masterNice)
            actions.append(startHost(pool, purpose: .candidate, global: current.configuration.global, loadsInBackground: loading))
        }
        return actions
    }

    /// Asks the shell to fork a host; it answers `hostForked` or `hostForkFailed`.
    mutating func startHost(_ pool: PoolSettings, purpose: HostSpec.Purpose, global: GlobalSettings, loadsInBackground: Bool) -> Action {
        let generation = (generations[pool.name] ?? 0) + 1
        generations[pool.name] = generation
        let scale = purpose == .replacement ? scaleTargets[pool.name] ?? 0 : 0
        let spec = HostSpec(pool: pool, generation: generation, global: global, purpose: purpose,
                            loadsInBackground: loadsInBackground, scaleTarget: scale)
        forking.append(spec)
        return .forkHost(spec)
    }

    mutating func hostForked(_ spec: HostSpec, pid: pid_t, now: MonotonicInstant) -> [Action] {
        forking.removeAll { $0 == spec }
        let limit = spec.global.backgroundLoading
        var host = HostProcess(pool: spec.pool, generation: spec.generation, pid: pid, started: now,
                               role: spec.purpose == .candidate ? .candidate : .replacement)
        if spec.loadsInBackground { host.backgroundLoading = BackgroundLoading(started: now, limit: limit) }
        hosts[pid] = host
        countedPools.insert(spec.pool.name)
        var actions: [Action] = [.log(.info, "started host pid \(pid) for pool \(spec.pool.name) gen \(spec.generation)")]
        if spec.purpose == .candidate {
            guard transaction != nil else {
                // The reload it was for is over (rolled back, or stopping): it serves nobody.
                return actions + [.signalGroup(pid, .kill)]
            }
            transaction?.candidates[spec.pool.name] = pid
        }
        if phase == .stopping {
            actions += drain(pid, now: now, retire: true)
        }
        return actions
    }

    mutating func hostForkFailed(_ spec: HostSpec, reason: String, now: MonotonicInstant) -> [Action] {
        forking.removeAll { $0 == spec }
        switch spec.purpose {
        case .candidate:
            return rollback(because: "pool \(spec.pool.name): cannot start a host process: \(reason)", now: now)
        case .replacement:
            let delay = restarts.failed(pool: spec.pool.name, now: now)
            return [.log(.error, "cannot start a host for pool \(spec.pool.name): \(reason); retrying in \(Formatting.seconds(delay))")]
        }
    }

    /// Every candidate ready: they take over once the generations they replace are retired.
    mutating func commitIfReady(now: MonotonicInstant) -> [Action] {
        guard let committing = transaction, switchInFlight == nil, committing.isComplete,
              committing.candidates.values.allSatisfy({ hosts[$0]?.isReady == true }) else { return [] }
        if committing.isInitial, let progress = handoff {
            if !progress.previousGone {
                // The old master still serves: it retires its generations first, then says go.
                handoff?.awaitingGoSince = now
                return [.log(.notice, "first generation ready; waiting for the previous master to retire its own"), .tellPreviousMaster(.ready)]
            }
            handoff = nil
            ownsFiles = true
            return [.log(.notice, "the previous master is gone: serving"), .takeOverFiles]
                + beginSwitch(retiring: [], promoting: committing.candidates.values.sorted(), purpose: .commit(committing), now: now)
        }
        // Replaced by a candidate, or their pool was removed.
        let replaced = hosts.values.filter(\.covers).map(\.pid).sorted()
        return beginSwitch(retiring: replaced, promoting: committing.candidates.values.sorted(), purpose: .commit(committing), now: now)
    }

    mutating func beginSwitch(retiring: [pid_t], promoting: [pid_t], purpose: GenerationSwitch.Purpose, now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        for pid in retiring { actions += drain(pid, now: now, retire: true) }
        switchInFlight = GenerationSwitch(retiring: retiring, promoting: promoting, purpose: purpose, started: now,
                                          nextCheck: now.advanced(bySeconds: GenerationSwitch.checkInterval))
        if retiring.isEmpty { return actions + completeSwitch(now: now) }
        return actions + [.countWaiting(retiring)]
    }

    mutating func waitingWorkers(_ count: Int, now: MonotonicInstant) -> [Action] {
        guard var current = switchInFlight else { return [] }
        if count == 0 { return completeSwitch(now: now) }
        current.nextCheck = now.advanced(bySeconds: GenerationSwitch.checkInterval)
        switchInFlight = current
        return []
    }

    /// No old worker can be woken for a connection any more (or the limit passed): the new
    /// generation serves.
    mutating func completeSwitch(now: MonotonicInstant) -> [Action] {
        guard let done = switchInFlight else { return [] }
        switchInFlight = nil
        var actions: [Action] = []
        for pid in done.promoting where hosts[pid] != nil { actions += goLive(pid) }
        switch done.purpose {
        case .commit(let committing):
            return actions + finishCommit(committing, now: now)
        case .replacement:
            for pid in done.promoting { if let pool = hosts[pid]?.pool.name { emergencyPools.remove(pool) } }
        case .handoff:
            return actions + handOver(now: now)
        }
        return actions + afterSwitch(now: now)
    }

    /// One switch at a time: what waited for this one runs now — a replacement that became
    /// ready meanwhile, a reload whose candidates are ready, a reload asked for meanwhile.
    mutating func afterSwitch(now: MonotonicInstant) -> [Action] {
        guard switchInFlight == nil else { return [] }
        if let ready = hosts.values.filter({ $0.role == .replacement && $0.isReady }).min(by: { $0.pid < $1.pid }) {
            return beginReplacementSwitch(ready.pid, now: now)
        }
        if transaction != nil { return commitIfReady(now: now) }
        return runPendingReload()
    }

    /// A replacement takes over from whatever still covers its pool (a host that asked to be
    /// replaced), with the same strict switch as a reload.
    mutating func beginReplacementSwitch(_ pid: pid_t, now: MonotonicInstant) -> [Action] {
        guard let host = hosts[pid] else { return [] }
        let retiring = hosts.values.filter { $0.pool.name == host.pool.name && $0.role == .live }.map(\.pid).sorted()
        return beginSwitch(retiring: retiring, promoting: [pid], purpose: .replacement, now: now)
    }

    /// The commit's switch has begun: the old generations are retired, so the reload is
    /// decided and can no longer be rolled back.
    var isCommitting: Bool {
        if case .commit = switchInFlight?.purpose { return true }
        return false
    }

    private mutating func finishCommit(_ committing: ReloadTransaction, now: MonotonicInstant) -> [Action] {
        transaction = nil
        let previous = configuration
        configuration = committing.configuration
        scaleTargets = [:] // a reload starts from the configuration, as gunicorn's does
        var actions: [Action] = [.applyGlobalSettings(old: previous.global, new: configuration.global)]
        let lines = committing.candidates.sorted { $0.key < $1.key }.compactMap { pool, pid in
            hosts[pid].map { "pool \(pool) gen \($0.generation): \($0.summary ?? "")" }
        }
        actions.append(.closeListeners(keeping: Set(configuration.pools.flatMap { [$0.listen] + ($0.statusListen.map { [$0] } ?? []) })))
        // At the commit, not when the sockets were acquired: a reload rolled back changes nothing.
        actions.append(.applySocketPermissions(configuration.pools))
        let elapsed = Int(committing.started.seconds(until: now) * 1000)
        let message = (committing.isInitial ? "started" : "reloaded") + " in \(elapsed) ms: " + lines.joined(separator: "; ")
        actions.append(.log(.notice, message))
        actions += committing.waiters.map { .answer($0, ok: true, message) }
        if committing.isInitial {
            phase = .running
            actions.append(.log(.notice, "forklift is ready: \(configuration.pools.count) pool(s) serving"))
        }
        actions += forgetRemovedPools()
        return actions + afterSwitch(now: now)
    }

    /// The reload asked for while the last one ran.
    mutating func runPendingReload() -> [Action] {
        guard reloadPending, transaction == nil, switchInFlight == nil else { return [] }
        return [.readConfiguration]
    }

    /// A step of the reload failed: tear the new generation down, keep the old one.
    mutating func rollback(because reason: String, now: MonotonicInstant) -> [Action] {
        guard let failed = transaction, !isCommitting else { return [] }
        transaction = nil
        var actions: [Action] = []
        for pid in failed.candidates.values.sorted() where hosts[pid] != nil {
            // Never live, so nothing in flight: KILL at once, even a host stuck in its preload
            // or its workers' init (a TERM would wait for it to finish loading).
            actions += drain(pid, now: now, retire: true)
            actions.append(.signalGroup(pid, .kill))
        }
        actions.append(.closeOpenedListeners(failed.openedAddresses))
        actions += failed.waiters.map { .answer($0, ok: false, "reload failed, rolled back: \(reason)") }
        if failed.isInitial {
            supervision?.startFailure = reason
            actions.append(.log(.error, "forklift refuses to start: \(reason)"))
            if isHandoff { actions.append(.tellPreviousMaster(.failed(reason))) }
            exitCode = 1
            return actions + beginStop(now: now)
        }
        let serving = hosts.values.filter { $0.role == .live }.sorted { $0.pool.name < $1.pool.name }.map { "pool \($0.pool.name) gen \($0.generation)" }
        actions.append(.log(.error, "reload failed and was rolled back; still serving \(serving.joined(separator: ", ")): \(reason)"))
        return actions + afterSwitch(now: now)
    }

    /// Let a ready host's workers accept connections.
    mutating func goLive(_ pid: pid_t) -> [Action] {
        guard var host = hosts[pid] else { return [] }
        host.role = .live
        hosts[pid] = host
        restarts.succeeded(pool: host.pool.name)
        return [.markLive(pid), .signal(pid, .usr2), .log(.notice, "\(host.label) is live")]
    }

    /// TERM a host and its workers: idle workers leave at once, busy ones finish their
    /// request. KILL at die_timeout (0: wait forever).
    ///
    /// `retire` (a newer generation takes over) also tells its workers not to take the
    /// connection they may just have been woken for: the new generation will.
    mutating func drain(_ pid: pid_t, now: MonotonicInstant, retire: Bool) -> [Action] {
        guard let host = hosts[pid], !host.isDraining else { return [] }
        // A TERMed host still loading finishes its preload first: at normal priority.
        var actions = endBackgroundLoading(pid, because: .stopping)
        let timeout = configuration.global.dieTimeout
        hosts[pid]?.role = .draining(deadline: timeout > 0 ? now.advanced(bySeconds: timeout) : nil)
        if retire { actions.append(.retire(pid)) }
        // The whole group at once: waiting for the host to pass TERM on would leave its
        // workers accepting connections a little longer.
        actions.append(.signalGroup(pid, .term))
        actions.append(.log(.info, "\(host.label) is draining"))
        return actions
    }

    /// Graceful stop: every host drains; the master exits when all are gone.
    mutating func beginStop(now: MonotonicInstant) -> [Action] {
        guard phase != .stopping else { return [] }
        phase = .stopping
        var actions: [Action] = []
        reloadPending = false
        actions += pendingReloadWaiters.map { .answer($0, ok: false, "forklift is stopping") }
        pendingReloadWaiters = []
        if let interrupted = transaction {
            transaction = nil
            actions += interrupted.waiters.map { .answer($0, ok: false, "forklift is stopping") }
        }
        switchInFlight = nil
        if let upgrade, let pid = upgrade.pid {
            actions.append(.tellUpgrade(.abort))
            actions.append(.signal(pid, .term)) // it never served: it leaves at once
        }
        actions += failUpgrade("forklift is stopping", now: now)
        if ownsFiles { actions.append(.refuseNewConnections) }
        for pid in hosts.keys.sorted() {
            let neverServed = hosts[pid]?.neverServed == true
            actions += drain(pid, now: now, retire: false)
            // Nothing in flight in a host that never served: no need to wait for its preload.
            if neverServed { actions.append(.signalGroup(pid, .kill)) }
        }
        return actions
    }

    /// Pools that are in no configuration any more and have no host left.
    mutating func forgetRemovedPools() -> [Action] {
        let wanted = Set(configuration.pools.map(\.name)).union(transaction?.configuration.pools.map(\.name) ?? [])
        let running = Set(hosts.values.map(\.pool.name))
        let gone = countedPools.subtracting(wanted).subtracting(running)
        countedPools.subtract(gone)
        return gone.sorted().map { .forgetPool($0) }
    }
}
