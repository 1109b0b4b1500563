import ForkliftConfig
import ForkliftIPC
import ForkliftSystem
import Glibc

/// What hosts tell the master, and what happens when they exit.
extension MasterCore {
    mutating func handleReport(_ report: HostReport, from pid: pid_t, now: MonotonicInstant) -> [Action] {
        guard var host = hosts[pid] else { return [] }
        switch report {
        case .loaded:
            // At idle priority it would serve only on CPU time nobody else wants.
            return endBackgroundLoading(pid, because: .loaded)
        case .ready(let summary):
            host.summary = summary
            hosts[pid] = host
            var actions: [Action] = [.log(.info, "\(host.label) is ready: \(summary)")]
            switch host.role {
            case .replacement:
                // One switch at a time: if another is under way, this one follows it.
                if switchInFlight == nil { actions += beginReplacementSwitch(pid, now: now) }
            case .candidate:
                actions += commitIfReady(now: now)
            default:
                break
            }
            return actions
        case .failed(let reason):
            host.failure = reason
            hosts[pid] = host
            let actions: [Action] = [.log(.error, "\(host.label) failed: \(reason)")]
            // Once the commit's switch began the reload is decided: the host's exit is handled
            // like any host's that dies.
            if host.role == .candidate && !isCommitting { return actions + rollback(because: reason, now: now) }
            return actions
        case .emergencyRestart(let reason):
            let replacing = hosts.values.contains { $0.pool.name == host.pool.name && $0.role == .replacement }
                || forking.contains { $0.pool.name == host.pool.name }
            guard host.role == .live, phase == .running, !emergencyPools.contains(host.pool.name), !replacing else { return [] }
            let delay = emergencies.record(pool: host.pool.name, now: now)
            restarts.schedule(pool: host.pool.name, at: now.advanced(bySeconds: delay))
            emergencyPools.insert(host.pool.name)
            return [.log(.error, "\(host.label) asks for an emergency restart (\(reason)): a fresh host for pool \(host.pool.name) starts \(delay == 0 ? "now" : "in \(Formatting.seconds(delay))"), and takes over once ready")]
        case .dataBuilt, .dataUnused:
            return [] // the shell's `SharedDataSets` keeps the data; the generations' fate is not its business
        }
    }

    mutating func hostExited(_ pid: pid_t, status: ExitStatus, now: MonotonicInstant) -> [Action] {
        guard let host = hosts.removeValue(forKey: pid) else { return [] }
        var actions: [Action] = []
        if var current = switchInFlight, current.promoting.contains(pid) || current.retiring.contains(pid) {
            // A host that left in the middle of a switch waits for nothing any more.
            current = GenerationSwitch(retiring: current.retiring.filter { $0 != pid }, promoting: current.promoting.filter { $0 != pid },
                                       purpose: current.purpose, started: current.started, nextCheck: current.nextCheck)
            switchInFlight = current
        }
        switch host.role {
        case .draining:
            actions.append(.log(.info, "\(host.label) \(status): drained"))
        case .candidate:
            if isCommitting {
                // The old generation is already retired: the new configuration's pool needs a host.
                let delay = restarts.failed(pool: host.pool.name, now: now)
                actions.append(.log(.error, "\(host.label) \(status) while its generation went live; a new host starts in \(Formatting.seconds(delay))"))
            } else if transaction?.candidates.values.contains(pid) == true {
                actions += rollback(because: host.failure ?? "the host of \(host.label) \(status) before it was ready", now: now)
            }
        case .replacement:
            let delay = restarts.failed(pool: host.pool.name, now: now)
            actions.append(.log(.error, "\(host.label) \(status) before it was ready; trying again in \(Formatting.seconds(delay))"))
        case .live:
            emergencyPools.remove(host.pool.name)
            let delay = restarts.failed(pool: host.pool.name, now: now)
            actions.append(.log(.error, "\(host.label) \(status); starting a new host in \(Formatting.seconds(delay))"))
        }
        return actions + forgetRemovedPools()
    }

    /// Is a host serving this pool, or starting to replace one that died? A reload's
    /// candidate does not count: gated until its commit, it serves nobody meanwhile.
    func isCovered(_ pool: String) -> Bool {
        hosts.values.contains { $0.pool.name == pool && $0.covers }
    }

    /// Pools that need a new host when their restart is due: uncovered ones, and those whose
    /// live host asked for a fresh one (unless one is already starting).
    var poolsWantingAHost: [String] {
        guard phase == .running else { return [] }
        return configuration.pools.map(\.name).filter { pool in
            let starting = hosts.values.contains { $0.pool.name == pool && $0.role == .replacement }
                || forking.contains { $0.pool.name == pool }
            return !starting && (!isCovered(pool) || emergencyPools.contains(pool))
        }
    }

    mutating func restartHost(_ poolName: String, now: MonotonicInstant) -> [Action] {
        guard let pool = configuration.pools.first(where: { $0.name == poolName }) else { return [] }
        restarts.attempted(pool: poolName)
        emergencyPools.remove(poolName)
        return [startHost(pool, purpose: .replacement, global: configuration.global, loadsInBackground: false)]
    }
}
