import Glibc

/// The CPU scheduling class of a thread: normal; batch (`SCHED_BATCH`: the same share of the
/// CPU, but a thread of it that wakes up does not preempt the one running, it waits for that
/// one to block or use up its time slice); or idle (`SCHED_IDLE`: it runs only on CPU time no
/// normal thread wants, and a normal thread that wakes up preempts it at once).
///
/// A reload's new generation loads at idle priority so that its preload competes as little
/// as possible with the generation that serves. Nice +19 is not enough for that: measured
/// on Linux 6.18, a nice +19 process faulting in memory still delayed the serving workers'
/// wakeups by milliseconds, where a `SCHED_IDLE` one did not.
public enum CPUPriority: Equatable, Sendable {
    case normal
    case batch
    case idle

    /// Sets the priority of one thread (0: the calling one). A thread inherits its creator's
    /// priority, a forked child that of the thread that forked.
    public static func set(_ priority: CPUPriority, of thread: pid_t) throws(SystemError) {
        var parameters = sched_param(sched_priority: 0)
        let (policy, name): (Int32, String) = switch priority {
        case .normal: (SCHED_OTHER, "SCHED_OTHER")
        case .batch: (batchPolicy, "SCHED_BATCH")
        case .idle: (idlePolicy, "SCHED_IDLE")
        }
        if sched_setscheduler(thread, policy, &parameters) != 0 {
            throw SystemError("sched_setscheduler(\(thread), \(name))")
        }
    }

    /// Sets the priority of every thread of a process: its main thread (whose failure, even
    /// `ESRCH`, is thrown), then the others (one that exits meanwhile is no error).
    public static func set(_ priority: CPUPriority, ofAllThreadsOf pid: pid_t) throws(SystemError) {
        try set(priority, of: pid)
        for thread in ProcessTree.threads(of: pid) where thread != pid {
            do {
                try set(priority, of: thread)
            } catch where error.errno == ESRCH {
                continue
            }
        }
    }

    /// The priority of a thread (0: the calling one), nil if it is gone or has a real-time
    /// policy (which Forklift never sets).
    public static func of(_ thread: pid_t) -> CPUPriority? {
        switch sched_getscheduler(thread) {
        case SCHED_OTHER: .normal
        case batchPolicy: .batch
        case idlePolicy: .idle
        default: nil
        }
    }

    /// Whether this process, and the children it forks, may go back from idle to normal
    /// priority. Linux treats leaving `SCHED_IDLE` like lowering a nice value from 20, which
    /// takes `CAP_SYS_NICE` in the initial user namespace or a high enough `RLIMIT_NICE`: a
    /// root without it (a container, a user namespace) cannot. Rather than re-derive those
    /// rules, this tries: it forks a child that only waits, lowers it, raises it, and kills
    /// it. The child calls nothing but `prctl`, `getppid` and `pause`, so a multi-threaded
    /// process may probe too; it waits for that child's pid alone.
    public static func probeLeavingIdle() -> Bool {
        let parent = getpid()
        let child = fork()
        if child == 0 {
            // Should the caller die before it kills us.
            ChildProcess.setParentDeathSignal(.kill)
            if getppid() != parent { _exit(0) }
            while true { pause() }
        }
        guard child > 0 else { return false }
        defer {
            kill(child, SIGKILL)
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        }
        do {
            try set(.idle, of: child)
            try set(.normal, of: child)
            return of(child) == .normal
        } catch {
            return false
        }
    }

    /// `SCHED_BATCH` (3) and `SCHED_IDLE` (5), which Glibc declares only under `_GNU_SOURCE`.
    static let batchPolicy: Int32 = 3
    static let idlePolicy: Int32 = 5
}
