import ForkliftSystem
import Glibc

/// What the master tells whoever supervises it: systemd through NOTIFY_SOCKET, and the
/// launcher of `forklift run --daemonize`, which waits for the same moment systemd does.
///
/// The state told is derived from the core's state (`MasterCore.serviceState`) and compared
/// before and after every event, so no path into or out of a reload can forget its message.
struct ServiceSupervision: Equatable {
    enum State: Equatable { case starting, ready, reloading, stopping }

    enum Notice: Equatable {
        /// READY=1; `initial`: the first time, with MAINPID (the daemon's launcher exits then).
        case ready(initial: Bool)
        /// RELOADING=1 with MONOTONIC_USEC: when the reload (or upgrade) began, on CLOCK_MONOTONIC.
        case reloading(monotonicMicroseconds: UInt64)
        case stopping
        /// The first generation never served: the daemon's launcher prints why.
        case startFailed(String)
        /// The old master of an upgrade hands the service over to the new one (MAINPID=).
        case mainPID(pid_t)
        case watchdog
        /// A fresh STATUS= line (the shell sends it only when it changed).
        case status
    }

    /// Seconds between WATCHDOG=1 (half of WATCHDOG_USEC, as sd_watchdog_enabled advises), or nil.
    let watchdogInterval: Double?
    /// How often the STATUS= line is refreshed between transitions.
    static let statusInterval = 1.0
    var nextWatchdog: MonotonicInstant?
    var nextStatus: MonotonicInstant
    /// Why the first generation failed, for `startFailed`.
    var startFailure: String?

    init(watchdogSeconds: Double?, now: MonotonicInstant) {
        watchdogInterval = watchdogSeconds.map { $0 / 2 }
        nextWatchdog = watchdogInterval.map { now.advanced(bySeconds: $0) }
        nextStatus = now.advanced(bySeconds: Self.statusInterval)
    }

    /// The messages for a change of state (none when it did not change).
    static func notices(from old: State, to new: State, ownsService: Bool, failure: String?, now: MonotonicInstant) -> [Notice] {
        guard old != new else { return [] }
        switch new {
        case .starting:
            return []
        case .ready:
            return [.ready(initial: old == .starting)]
        case .reloading:
            return [.reloading(monotonicMicroseconds: now.nanoseconds / 1000)]
        case .stopping:
            // An upgrade's old master leaves without stopping the service: the new one has it.
            var notices: [Notice] = ownsService ? [.stopping] : []
            if old == .starting { notices.append(.startFailed(failure ?? "it was stopped before it was ready")) }
            return notices
        }
    }
}

extension MasterCore {
    /// What systemd should believe of this master now.
    var serviceState: ServiceSupervision.State {
        switch phase {
        case .starting: return .starting
        case .stopping: return .stopping
        case .running:
            // A reload (asked for, loading or switching) or an upgrade in flight.
            return transaction != nil || reloadPending || upgrade != nil ? .reloading : .ready
        }
    }

    /// The notices for a change of state, after `handle` (nothing when unsupervised).
    mutating func superviseTransition(from old: ServiceSupervision.State, now: MonotonicInstant) -> [Action] {
        guard let supervision else { return [] }
        let notices = ServiceSupervision.notices(from: old, to: serviceState, ownsService: ownsFiles,
                                                 failure: supervision.startFailure, now: now)
        return notices.map { .notifyService($0) }
    }

    /// Only a master that owns the files speaks for the service: not an upgrade's new master
    /// before the old one said go, nor the old one after.
    func supervisionTimers() -> [(at: MonotonicInstant, timer: Timer)] {
        guard let supervision, ownsFiles else { return [] }
        var list = [(supervision.nextStatus, Timer.serviceStatus)]
        if let at = supervision.nextWatchdog { list.append((at, .watchdog)) }
        return list
    }

    mutating func fireSupervision(_ timer: Timer, now: MonotonicInstant) -> [Action] {
        guard var current = supervision else { return [] }
        defer { supervision = current }
        if timer == .watchdog, let interval = current.watchdogInterval {
            current.nextWatchdog = now.advanced(bySeconds: interval)
            return [.notifyService(.watchdog)]
        }
        current.nextStatus = now.advanced(bySeconds: ServiceSupervision.statusInterval)
        return [.notifyService(.status)]
    }
}
