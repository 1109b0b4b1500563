import ForkliftSystem
import Glibc

/// A reload's new generation loads at idle CPU priority (see `BackgroundLoading`).
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
            apply(action, to: pid)
        }
    }

    /// The host is ready or told to stop: back to normal priority if it was lowered.
    func endBackgroundLoading(_ pid: pid_t, because reason: BackgroundLoading.Reason) {
        guard var policy = hosts[pid]?.backgroundLoading else { return }
        let action = policy.finished(reason)
        hosts[pid]?.backgroundLoading = policy
        if let action { apply(action, to: pid) }
    }

    var loadingPriorityDeadlines: [MonotonicInstant] {
        hosts.values.compactMap { $0.backgroundLoading?.nextDeadline }
    }

    private func apply(_ action: BackgroundLoading.Action, to pid: pid_t) {
        guard let host = hosts[pid] else { return }
        let limit = host.backgroundLoading?.limit ?? 0
        switch action {
        case .lower:
            do {
                try CPUPriority.set(.idle, of: pid)
                log.info("\(host.label) is still loading after \(Int(BackgroundLoading.grace * 1000)) ms: it continues at idle CPU priority, for at most \(Formatting.seconds(limit)) (background_loading)")
            } catch {
                log.warning("\(host.label) keeps loading at normal CPU priority: \(error)")
            }
        case .raise(let reason):
            // The host first: a worker it forks from now on is born at normal priority.
            var failures: [String] = []
            for process in [pid] + ProcessTree.children(of: pid) {
                do { try CPUPriority.set(.normal, of: process) } catch { failures.append("\(error)") }
            }
            switch reason {
            case .ready:
                log.info("\(host.label) loaded at idle CPU priority; it and its workers are back to normal priority")
            case .stopping:
                log.debug("\(host.label) is told to stop while loading: back to normal CPU priority")
            case .limitReached:
                log.notice("\(host.label) is still loading after \(Formatting.seconds(limit)) at idle CPU priority (background_loading): it continues at normal priority")
            }
            if !failures.isEmpty {
                log.error("\(host.label) could not be raised back to normal CPU priority, it may serve slowly: \(failures.joined(separator: "; "))")
            }
        }
    }
}
