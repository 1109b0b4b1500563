import ForkliftSystem
import Glibc

/// standby_workers: when the pool forks a worker while serving, a standby past its worker
/// init takes the place instead (`fork(now:)`), and another standby is forked behind it.
extension PoolCore {
    /// Forks standbys up to `standby_workers`: only while serving (not while the first
    /// workers start, which the start waits for, nor while stopping) and not while failed
    /// starts back off (a standby runs the same worker init as a worker).
    mutating func keepStandbys(now: MonotonicInstant) -> [Action] {
        standbys.expireHold(now: now)
        guard phase == .serving, settings.standbyWorkers > 0, failures.allowsFork(now: now) else { return [] }
        // After a failed start, one at a time, as `maintain` forks workers.
        let wanted = failures.consecutive > 0 ? min(settings.standbyWorkers, standbys.count + 1) : settings.standbyWorkers
        return Array(repeating: .forkStandby, count: standbys.forks(toReach: wanted))
    }

    /// A fork held back after a release (`Standbys.forkDelay`), while standbys are short.
    var standbyForkDeadline: MonotonicInstant? {
        guard phase == .serving, settings.standbyWorkers > 0 else { return nil }
        return standbys.heldForkDeadline(wanted: settings.standbyWorkers)
    }

    mutating func standbyForked(_ pid: pid_t, now: MonotonicInstant) -> [Action] {
        standbys.forked(pid, now: now)
        guard phase == .stopping else { return [] }
        // Asked for just before the stop: it leaves with the others.
        standbys.dismiss(pid)
        return [.signal(pid, .term)]
    }

    mutating func standbyReady(_ pid: pid_t, now: MonotonicInstant) -> [Action] {
        guard let forked = standbys.byPID[pid]?.forked, standbys.ready(pid, now: now) else { return [] }
        return [.log(.debug, "standby worker \(pid) ready \(Formatting.milliseconds(from: forked, to: now)) ms after fork")]
    }

    /// A standby that leaves unasked died in its worker init or waiting: a failed start, as a
    /// worker's would be (with its reason, and the same back-off), unless it had waited long
    /// enough to be proven (the OOM killer, an operator), and another is forked.
    mutating func standbyExited(_ pid: pid_t, status: ExitStatus, now: MonotonicInstant) -> [Action] {
        guard let standby = standbys.remove(pid) else { return [] }
        defer { failures.reasons[pid] = nil }
        if phase == .stopping || standby.dismissed { return [] }
        let what = standby.ready == nil
            ? (status == .exited(3) ? "failed its worker init" : "\(status) in its worker init")
            : "\(status) while on standby"
        var actions: [Action]
        if standby.proven {
            actions = [.log(.error, "standby worker \(pid) \(what) after \(Formatting.oneDecimal(standby.forked.seconds(until: now))) s; forking another")]
        } else {
            actions = failures.failedStart(pool: settings.pool, pid: pid, description: "standby worker \(pid) \(what)", now: now)
        }
        if case .signaled(let signal, _) = status, EmergencyWindow.isCrash(signal), let reason = emergency.record(now: now) {
            actions.append(.log(.error, "pool \(settings.pool): \(reason): asking the master for a fresh host (emergency_restart_threshold)"))
            actions.append(.report(.emergencyRestart(reason: reason)))
        }
        return actions
    }

    /// A released standby whose slot shows it past its start serves, even if its "serving"
    /// line was lost (a full ready pipe): the next standby is not held back for good.
    mutating func noteServingStandbys(_ observation: Observation, now: MonotonicInstant) {
        for pid in standbys.starting {
            guard let worker = workers[pid], let state = state(of: worker, in: observation), state != .starting else { continue }
            standbys.serving(pid, now: now)
        }
    }

    /// A standby waiting a while after its worker init proves the init works, as a worker does.
    mutating func proveStandbys(now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        for pid in standbys.prove(after: Self.provenAfter, now: now) where failures.consecutive > 0 || failures.delay > 0 {
            actions += failures.recovered(pool: settings.pool, pid: pid)
        }
        return actions
    }
}
