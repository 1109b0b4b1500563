import ForkliftConfig
import ForkliftSystem

/// When a reload's new generation loads at idle CPU priority, as a pure policy: the master
/// feeds it the time and the host's readiness, and does what it answers.
///
/// A preload that faults in hundreds of MiB takes seconds of CPU, and on a busy machine it
/// takes them from the workers that serve: measured, the p99 latency of the serving generation
/// rose to 2.4x while a 512 MiB preload ran at normal priority, and stayed at 1.4x at idle
/// priority. So a new generation still loading after `grace` continues at idle priority —
/// on CPU time the serving workers leave unused — for at most `limit`, then at normal
/// priority again so that a saturated machine still reloads. A light plugin is loaded within
/// the grace and never leaves normal priority: its reload is not delayed at all.
struct BackgroundLoading: Equatable {
    enum Action: Equatable {
        /// Lower the host to idle priority.
        case lower
        /// Raise the host back to normal priority (its workers raise themselves).
        case raise(Reason)
    }

    enum Reason: Equatable {
        /// The host's preload is done (it raised itself; this covers a lowering that raced it).
        /// It reports that before its workers are forked, so before it is ready.
        case loaded
        /// It has loaded at idle priority for `limit` and is not done.
        case limitReached
        /// It is told to stop: a host still loading finishes its preload before it can.
        case stopping
    }

    enum State: Equatable {
        case normal(lowerAt: MonotonicInstant)
        /// `raiseAt` nil: the raise at the limit failed; it is tried again when the host is
        /// loaded, and then a failure rolls the reload back.
        case idle(raiseAt: MonotonicInstant?)
        case done
    }

    /// How long a new generation loads at normal priority first. Loading Hello takes under
    /// 10 ms (under load as well); a 512 MiB preload takes seconds.
    static let grace = 0.05

    private(set) var state: State
    let limit: Double

    /// `limit`: the `background_loading` setting, above 0.
    init(started: MonotonicInstant, limit: Double) {
        self.limit = limit
        state = .normal(lowerAt: started.advanced(bySeconds: Self.grace))
    }

    var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// When `tick` has something to do next.
    var nextDeadline: MonotonicInstant? {
        switch state {
        case .normal(let at): at
        case .idle(let at): at
        case .done: nil
        }
    }

    mutating func tick(now: MonotonicInstant) -> Action? {
        switch state {
        case .normal(let lowerAt) where now >= lowerAt:
            state = .idle(raiseAt: now.advanced(bySeconds: limit))
            return .lower
        case .idle(let raiseAt?) where now >= raiseAt:
            state = .done
            return .raise(.limitReached)
        default:
            return nil
        }
    }

    /// Whether a pool's host may be lowered at all. A host that leaves root for the pool's
    /// user (`changesUser`) and its workers raise themselves back from idle priority, which
    /// Linux lets a user other than root do only within RLIMIT_NICE (leaving SCHED_IDLE counts
    /// as lowering the nice value from 20 to the process's own); the host can raise that limit
    /// to what it needs only up to the hard limit it inherits. Below that, the pool loads at
    /// normal priority rather than risk workers stuck at idle.
    /// `inheritedNice`: the master's nice value, the host's unless `process_priority` says.
    static func allowed(for privileges: ProcessPrivileges, changesUser: Bool, niceHardLimit: UInt64, inheritedNice: Int32 = 0) -> Bool {
        guard changesUser && privileges.changesUser else { return true }
        return niceHardLimit >= neededNiceLimit(nice: privileges.priority ?? inheritedNice)
    }

    /// The RLIMIT_NICE that lets a process at `nice` leave SCHED_IDLE: 20 - nice (the limit
    /// is "20 - the lowest nice value allowed").
    static func neededNiceLimit(nice: Int32) -> UInt64 {
        UInt64(max(1, 20 - max(-20, min(19, nice))))
    }

    /// Lowering the host failed: it loads at normal priority, and is not raised later.
    mutating func loweringFailed() {
        state = .done
    }

    /// Raising it at the limit failed: it is still idle.
    mutating func raisingFailed() {
        state = .idle(raiseAt: nil)
    }

    /// The host is loaded (`.loaded`) or told to stop (`.stopping`): nothing more to lower.
    mutating func finished(_ reason: Reason) -> Action? {
        defer { state = .done }
        return isIdle ? .raise(reason) : nil
    }
}
