import ForkliftConfig
import ForkliftIPC
import ForkliftSystem
import Glibc

/// Everything a freshly forked worker needs; the host builds one per fork.
public struct WorkerLaunch {
    public let pool: PoolSettings
    public let generation: Int
    /// The pool's listening socket (non-blocking, shared by every worker of the pool).
    public let listenFD: Int32
    /// The pool's parking channel (workers' end, shared by all of them), -1 for none: idle kept
    /// connections go to the master over it, and come back when their client sends a request.
    public let parkFD: Int32
    public let plugins: [PluginInstance]
    /// Requests before this worker retires: max_requests plus its share of jitter; 0 = never.
    public let requestLimit: Int
    /// The worker writes "ready" here once worker init passed, and its backtraces afterwards.
    public let readyFD: Int32
    /// The host that forked this worker; if it goes away, the worker finishes and leaves.
    public let hostPID: pid_t
    /// Read end of the host's gate pipe: the worker accepts no connection until the host
    /// closes the write end, which it does when the master makes the generation live.
    public let gateFD: Int32
    /// The generation's scoreboard: tells the worker when it was retired or made live.
    public let board: GenerationBoard
    /// This worker's own slot in it, which it keeps up to date (a standby's, once released).
    public var slot: WorkerSlot
    /// A standby worker's eventfd, which its host posts its slot to (`StandbyWait`), -1 for a
    /// worker forked into its slot. A standby's `slot` is a placeholder until its host names one.
    public let standbyFD: Int32
    /// The pool's counters (requests accepted, workers active).
    public let counters: PoolCounters
    /// The host may have been at idle CPU priority when it forked this worker (see
    /// `HostLaunch.loadsInBackground`): the worker then raises itself to normal priority.
    public let leavesIdlePriority: Bool

    public init(pool: PoolSettings, generation: Int, listenFD: Int32, parkFD: Int32 = -1, plugins: [PluginInstance],
                requestLimit: Int, readyFD: Int32, hostPID: pid_t, gateFD: Int32, board: GenerationBoard, slot: WorkerSlot,
                counters: PoolCounters, leavesIdlePriority: Bool = false, standbyFD: Int32 = -1) {
        self.pool = pool
        self.generation = generation
        self.listenFD = listenFD
        self.parkFD = parkFD
        self.plugins = plugins
        self.requestLimit = requestLimit
        self.readyFD = readyFD
        self.hostPID = hostPID
        self.gateFD = gateFD
        self.board = board
        self.slot = slot
        self.counters = counters
        self.leavesIdlePriority = leavesIdlePriority
        self.standbyFD = standbyFD
    }

    public var isStandby: Bool { standbyFD >= 0 }

    /// One line to the host on `readyFD`: "ready", "serving" or "leaving", with this pid (under
    /// PIPE_BUF, so it cannot interleave with another worker's).
    func tellHost(_ word: String) { try? writeAll(readyFD, "\(word) \(getpid())\n") }
}

/// A worker's exit status is a message to its host (as in gunicorn).
public enum WorkerExitCode {
    /// Retired: stopped, recycled after its request limit, or orphaned.
    public static let normal: Int32 = 0
    /// Setting up the worker itself failed (epoll, signals).
    public static let setupFailed: Int32 = 2
    /// A plugin's worker init hook failed: respawning would fail the same way.
    public static let initFailed: Int32 = 3
}
