import ForkliftSystem
import Glibc

/// A reload's new generation loads at idle CPU priority (see `BackgroundLoading`).
///
/// The master lowers and raises the host; the workers the host forks while lowered raise
/// themselves as the first thing they do (`HostLaunch.loadsInBackground`), before any plugin
/// code runs in them and before they start threads, so no worker and none of its threads
/// serves at idle priority, whatever the timing of a fork against the master's moves.
extension Master {
    /// The policy for a host starting now, or nil if it loads at normal priority throughout:
    /// nobody is served while the first generation starts (unless an upgrading master still
    /// serves), and without the right to raise it back a lowered host would stay idle.
    func backgroundLoading(isInitial: Bool, limit: Double) -> BackgroundLoading? {
        guard limit > 0, !isInitial || handoff != nil, mayLoadInBackground else { return nil }
        return BackgroundLoading(started: .now(), limit: limit)
    }

    /// Lowers or raises the hosts whose time has come.
    func updateLoadingPriorities(now: MonotonicInstant) {
        for (pid, host) in hosts {
            guard var policy = host.backgroundLoading, let action = policy.tick(now: now) else { continue }
            hosts[pid]?.backgroundLoading = policy
            if !apply(action, to: pid) { hosts[pid]?.backgroundLoading?.raisingFailed() }
        }
    }

    /// The host is loaded or told to stop: back to normal priority if it was lowered.
    /// False if it could not be raised (it stays at idle priority: do not let it serve).
    @discardableResult
    func endBackgroundLoading(_ pid: pid_t, because reason: BackgroundLoading.Reason) -> Bool {
        guard var policy = hosts[pid]?.backgroundLoading else { return true }
        let action = policy.finished(reason)
        hosts[pid]?.backgroundLoading = policy
        return action.map { apply($0, to: pid) } ?? true
    }

    var loadingPriorityDeadlines: [MonotonicInstant] {
        hosts.values.compactMap { $0.backgroundLoading?.nextDeadline }
    }

    /// True if done.
    @discardableResult
    private func apply(_ action: BackgroundLoading.Action, to pid: pid_t) -> Bool {
        guard let host = hosts[pid] else { return true }
        let limit = host.backgroundLoading?.limit ?? 0
        switch action {
        case .lower:
            do {
                // Every thread: a preload may load in parallel.
                try CPUPriority.set(.idle, ofAllThreadsOf: pid)
                log.info("\(host.label) is still loading after \(Int(BackgroundLoading.grace * 1000)) ms: it continues at idle CPU priority, for at most \(Formatting.seconds(limit)) (background_loading)")
            } catch {
                hosts[pid]?.backgroundLoading?.loweringFailed()
                try? CPUPriority.set(.normal, ofAllThreadsOf: pid) // in case some threads were lowered
                log.warning("\(host.label) keeps loading at normal CPU priority: \(error)")
            }
            return true
        case .raise(let reason):
            do {
                try CPUPriority.set(.normal, ofAllThreadsOf: pid)
            } catch {
                log.error("\(host.label) cannot be raised back from idle CPU priority: \(error)")
                return false
            }
            switch reason {
            case .loaded:
                log.info("\(host.label) loaded at idle CPU priority and is back to normal priority")
            case .stopping:
                log.debug("\(host.label) is told to stop while loading: back to normal CPU priority")
            case .limitReached:
                log.notice("\(host.label) is still loading after \(Formatting.seconds(limit)) at idle CPU priority (background_loading): it continues at normal priority")
            }
            return true
        }
    }
}
