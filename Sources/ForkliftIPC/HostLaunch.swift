import ForkliftConfig
import Glibc

/// What the master hands a host process it forks: one pool, one generation.
public struct HostLaunch {
    public let global: GlobalSettings
    public let pool: PoolSettings
    public let generation: Int
    /// The pool's listening socket, owned by the master, inherited across every fork.
    public let listenFD: Int32
    /// The host reports `HostReport`s here, one per line.
    public let reportFD: Int32
    public let masterPID: pid_t
    /// This generation's slot in the master's scoreboard.
    public let slot: HostSlot
    /// The master may lower this host to idle CPU priority while it loads (background_loading):
    /// a worker forked meanwhile inherits it, and must raise itself before it does anything else.
    public let loadsInBackground: Bool

    public init(global: GlobalSettings, pool: PoolSettings, generation: Int, listenFD: Int32, reportFD: Int32, masterPID: pid_t,
                slot: HostSlot, loadsInBackground: Bool = false) {
        self.global = global
        self.pool = pool
        self.generation = generation
        self.listenFD = listenFD
        self.reportFD = reportFD
        self.masterPID = masterPID
        self.slot = slot
        self.loadsInBackground = loadsInBackground
    }
}
