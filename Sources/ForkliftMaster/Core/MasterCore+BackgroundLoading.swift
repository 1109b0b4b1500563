import ForkliftSystem
import Glibc

/// A reload's new generation loads at idle CPU priority (see `BackgroundLoading`).
///
/// The master lowers and raises the host; the workers the host forks while lowered raise
/// themselves as the first thing they do (`HostLaunch.loadsInBackground`), before any plugin
/// code runs in them and before they start threads, so no worker and none of its threads
/// serves at idle priority, whatever the timing of a fork against the master's moves.
extension MasterCore {
    /// The host is loaded or told to stop: back to normal priority if it was lowered.
    mutating func endBackgroundLoading(_ pid: pid_t, because reason: BackgroundLoading.Reason) -> [Action] {
        guard var policy = hosts[pid]?.backgroundLoading else { return [] }
        let action = policy.finished(reason)
        hosts[pid]?.backgroundLoading = policy
        return action.map { [.setPriority(pid, $0)] } ?? []
    }

    /// A host's loading timer is due.
    mutating func tickBackgroundLoading(_ pid: pid_t, now: MonotonicInstant) -> [Action] {
        guard var policy = hosts[pid]?.backgroundLoading, let action = policy.tick(now: now) else { return [] }
        hosts[pid]?.backgroundLoading = policy
        return [.setPriority(pid, action)]
    }

    mutating func priorityChanged(_ pid: pid_t, _ action: BackgroundLoading.Action, error: String?, now: MonotonicInstant) -> [Action] {
        guard let host = hosts[pid] else { return [] }
        let limit = host.backgroundLoading?.limit ?? 0
        switch action {
        case .lower:
            if let error {
                hosts[pid]?.backgroundLoading?.loweringFailed()
                return [.log(.warning, "\(host.label) keeps loading at normal CPU priority: \(error)")]
            }
            return [.log(.info, "\(host.label) is still loading after \(Int(BackgroundLoading.grace * 1000)) ms: it continues at idle CPU priority, for at most \(Formatting.seconds(limit)) (background_loading)")]
        case .raise(let reason):
            if let error {
                switch reason {
                case .loaded:
                    // At idle priority it would serve only on CPU time nobody else wants.
                    return [.log(.error, "\(host.label) cannot be raised back from idle CPU priority: \(error)")]
                        + rollback(because: "\(host.label) could not be raised back from idle CPU priority (set background_loading = 0)", now: now)
                case .limitReached:
                    hosts[pid]?.backgroundLoading?.raisingFailed()
                    return [.log(.error, "\(host.label) cannot be raised back from idle CPU priority: \(error)")]
                case .stopping:
                    return []
                }
            }
            switch reason {
            case .loaded: return [.log(.info, "\(host.label) loaded at idle CPU priority and is back to normal priority")]
            case .stopping: return [.log(.debug, "\(host.label) is told to stop while loading: back to normal CPU priority")]
            case .limitReached:
                return [.log(.notice, "\(host.label) is still loading after \(Formatting.seconds(limit)) at idle CPU priority (background_loading): it continues at normal priority")]
            }
        }
    }
}
