import ForkliftConfig
import ForkliftSystem
import Glibc

/// Every deadline the master has, derived from its state in one place: `nextDeadline` is
/// what the shell waits for, `fireTimers` acts on the same list. A timer that fires changes
/// the state it came from, so it never fires twice.
extension MasterCore {
    enum Timer: Equatable {
        case reloadTimeout
        case replacementTimeout(pid_t)
        case dieTimeout(pid_t)
        case backgroundLoading(pid_t)
        case restart(String)
        case switchCheck
        case switchLimit
        case upgradeTimeout
        case handoffTimeout
        /// systemd's STATUS= line and WATCHDOG=1 (see `ServiceSupervision`).
        case serviceStatus
        case watchdog
    }

    func timers() -> [(at: MonotonicInstant, timer: Timer)] {
        var list: [(MonotonicInstant, Timer)] = []
        // Not once the commit's switch began (it is decided), nor while the old master of an
        // upgrade retires its generations.
        if let transaction, handoff?.awaitingGoSince == nil, !isCommitting { list.append((transaction.deadline, .reloadTimeout)) }
        for host in hosts.values.sorted(by: { $0.pid < $1.pid }) {
            switch host.role {
            case .replacement where !host.isReady:
                // A replacement that never becomes ready would make its pool look served for good.
                list.append((host.started.advanced(bySeconds: configuration.global.reloadTimeout), .replacementTimeout(host.pid)))
            case .draining(let deadline?):
                list.append((deadline, .dieTimeout(host.pid)))
            default:
                break
            }
            if let at = host.backgroundLoading?.nextDeadline { list.append((at, .backgroundLoading(host.pid))) }
        }
        // Only restarts that would be acted on: a due time of a covered pool stays in the past
        // and would make every poll return at once.
        for pool in poolsWantingAHost {
            if let due = restarts.dueTime(pool: pool) { list.append((due, .restart(pool))) }
        }
        if let switchInFlight {
            list.append((switchInFlight.nextCheck, .switchCheck))
            list.append((switchInFlight.deadline, .switchLimit))
        }
        if let upgrade { list.append((upgrade.deadline, .upgradeTimeout)) }
        if let since = handoff?.awaitingGoSince {
            // The old master retires its generations in at most 200 ms and answers at once.
            list.append((since.advanced(bySeconds: HandoffProgress.goTimeout), .handoffTimeout))
        }
        return list + supervisionTimers()
    }

    var nextDeadline: MonotonicInstant? { timers().map(\.at).min() }

    mutating func fireTimers(now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        // A fired timer may start or end others (a rollback, a restart): look again until none is due.
        for _ in 0..<16 {
            let due = timers().filter { $0.at <= now }
            guard let first = due.first else { break }
            actions += fire(first.timer, now: now)
        }
        return actions
    }

    private mutating func fire(_ timer: Timer, now: MonotonicInstant) -> [Action] {
        switch timer {
        case .reloadTimeout:
            let timeout = transaction?.configuration.global.reloadTimeout ?? 0
            return rollback(because: "the new generation was not ready within reload_timeout (\(Formatting.seconds(timeout)))", now: now)
        case .replacementTimeout(let pid):
            guard let host = hosts[pid] else { return [] }
            hosts[pid]?.role = .draining(deadline: nil)
            // Its pool is uncovered now: schedule the next attempt, with the growing delay.
            let delay = restarts.failed(pool: host.pool.name, now: now)
            return [.log(.error, "\(host.label) was not ready within reload_timeout (\(Formatting.seconds(configuration.global.reloadTimeout))): killing it; the next host starts in \(Formatting.seconds(delay))"),
                    .signalGroup(pid, .kill)]
        case .dieTimeout(let pid):
            guard let host = hosts[pid] else { return [] }
            hosts[pid]?.role = .draining(deadline: nil)
            if phase == .stopping { exitCode = 1 }
            return [.log(.error, "\(host.label) still busy after die_timeout (\(Formatting.seconds(configuration.global.dieTimeout))): killing it and its workers"),
                    .signalGroup(pid, .kill)]
        case .backgroundLoading(let pid):
            return tickBackgroundLoading(pid, now: now)
        case .restart(let pool):
            return restartHost(pool, now: now)
        case .switchCheck:
            guard var current = switchInFlight else { return [] }
            current.nextCheck = current.deadline.advanced(bySeconds: 1) // until the count comes back
            switchInFlight = current
            return [.countWaiting(current.retiring)]
        case .switchLimit:
            return [.log(.warning, "an old worker still counted as waiting after \(Int(GenerationSwitch.limit * 1000)) ms (stalled client, or it died mid-accept); the new generation goes live anyway")]
                + completeSwitch(now: now)
        case .upgradeTimeout:
            var actions: [Action] = []
            if let pid = upgrade?.pid { actions = [.tellUpgrade(.abort), .signal(pid, .term)] }
            return actions + failUpgrade("the new master was not ready within reload_timeout (\(Formatting.seconds(configuration.global.reloadTimeout))) and a little more: it was told to leave", now: now)
        case .handoffTimeout:
            handoff = nil
            return rollback(because: "the previous master did not say go within \(Formatting.seconds(HandoffProgress.goTimeout)) of this one being ready", now: now)
        case .serviceStatus, .watchdog:
            return fireSupervision(timer, now: now)
        }
    }
}
