import ForkliftSystem
import Glibc

/// The pool's standby workers (`standby_workers`): forked ahead, each passes its worker init
/// and then waits, off the scoreboard, until the pool needs a worker — one retired, died, or
/// scaling wants another. It then takes the free slot at once, so neither the fork (the host's
/// page tables copied) nor the new process's first touches of its pages lie between a worker
/// leaving and its place accepting again. A new standby is forked behind it.
///
/// The standbys' own bookkeeping; `PoolCore+Standby` decides when they are forked and taken.
struct Standbys: Equatable {
    struct Standby: Equatable {
        let pid: pid_t
        let forked: MonotonicInstant
        /// When it passed worker init and began to wait.
        var ready: MonotonicInstant?
        /// Up a while past worker init: its start did not fail.
        var proven = false
        /// TERMed by the host (a stop): its exit is expected.
        var dismissed = false
    }

    private(set) var byPID: [pid_t: Standby] = [:]
    /// Forks asked for whose pid has not come back yet.
    private(set) var forksInFlight = 0
    /// Standbys released into a slot that have not said "serving" yet, and until when the next
    /// fork waits after they have (`forkDelay`). Forked at the release, the next standby held up
    /// the one taking the place: woken onto the host's core, it waited out the fork there, or
    /// the host, woken by its "serving" line, preempted it for the fork just before its first
    /// wait (a release then took 1.5 ms instead of 0.5).
    private(set) var starting: Set<pid_t> = []
    private(set) var forksHeldUntil: MonotonicInstant?
    static let forkDelay = 0.001

    var isEmpty: Bool { byPID.isEmpty }
    var count: Int { byPID.count }
    /// Past worker init, ready to take a place.
    var waiting: Int { available.count }
    private var available: [Standby] { byPID.values.filter { $0.ready != nil && !$0.dismissed } }
    var pids: [pid_t] { byPID.keys.sorted() }
    func contains(_ pid: pid_t) -> Bool { byPID[pid] != nil }

    /// Forks to ask for so that `count` standbys are there or coming.
    mutating func forks(toReach count: Int) -> Int {
        guard starting.isEmpty, forksHeldUntil == nil else { return 0 }
        let missing = max(0, count - byPID.count - forksInFlight)
        forksInFlight += missing
        return missing
    }

    mutating func forked(_ pid: pid_t, now: MonotonicInstant) {
        forksInFlight = max(0, forksInFlight - 1)
        byPID[pid] = Standby(pid: pid, forked: now)
    }

    mutating func forkFailed() { forksInFlight = max(0, forksInFlight - 1) }

    /// Its "ready" line; false for a pid that is no standby.
    mutating func ready(_ pid: pid_t, now: MonotonicInstant) -> Bool {
        guard byPID[pid]?.ready == nil, byPID[pid] != nil else { return false }
        byPID[pid]?.ready = now
        return true
    }

    /// The standby that takes a place: the one waiting longest. It is a worker from now on.
    mutating func take() -> Standby? {
        guard let oldest = available.min(by: { ($0.ready!, $0.pid) < ($1.ready!, $1.pid) }) else { return nil }
        starting.insert(oldest.pid)
        return byPID.removeValue(forKey: oldest.pid)
    }

    /// A released standby waits for connections ("serving PID"), or is gone.
    mutating func serving(_ pid: pid_t, now: MonotonicInstant) {
        guard starting.remove(pid) != nil else { return }
        forksHeldUntil = now.advanced(bySeconds: Self.forkDelay)
    }

    /// The hold after a release is over at `now`: it is no deadline any more.
    mutating func expireHold(now: MonotonicInstant) {
        if let held = forksHeldUntil, now >= held { forksHeldUntil = nil }
    }

    /// When a fork held back may go, if one is wanted (the core's deadline).
    func heldForkDeadline(wanted count: Int) -> MonotonicInstant? {
        guard starting.isEmpty, byPID.count + forksInFlight < count else { return nil }
        return forksHeldUntil
    }

    mutating func remove(_ pid: pid_t) -> Standby? { byPID.removeValue(forKey: pid) }

    /// Every standby is told to go (the pool stops): their pids, to TERM.
    mutating func dismissAll() -> [pid_t] {
        let pids = self.pids.filter { byPID[$0]?.dismissed == false }
        for pid in pids { byPID[pid]?.dismissed = true }
        return pids
    }

    mutating func dismiss(_ pid: pid_t) { byPID[pid]?.dismissed = true }

    /// Standbys waiting for `provenAfter` seconds now, not proven before: they are proven.
    mutating func prove(after seconds: Double, now: MonotonicInstant) -> [pid_t] {
        let due = byPID.values.filter { !$0.proven && ($0.ready.map { $0.seconds(until: now) >= seconds } ?? false) }.map(\.pid).sorted()
        for pid in due { byPID[pid]?.proven = true }
        return due
    }
}
