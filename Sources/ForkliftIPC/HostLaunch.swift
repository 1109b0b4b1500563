import ForkliftConfig
import Glibc

/// What the master hands a host process it forks: one pool, one generation.
public struct HostLaunch {
    public let global: GlobalSettings
    public let pool: PoolSettings
    public let generation: Int
    /// The pool's listening socket, owned by the master, inherited across every fork.
    public let listenFD: Int32
    /// The `status_listen` socket, if the pool has one.
    public let statusListenFD: Int32?
    /// The workers' end of the pool's parking channel (`ParkingChannel`), -1 for none.
    public let parkFD: Int32
    /// The host reports `HostReport`s here, one per line, for as long as it lives.
    public let reportFD: Int32
    public let masterPID: pid_t
    /// This generation's scoreboard, and the pool's counters; the only shared memory the
    /// host keeps mapped.
    public let board: GenerationBoard
    public let counters: PoolCounters
    /// The master may lower this host to idle CPU priority while it loads (background_loading):
    /// a worker forked meanwhile inherits it, and must raise itself before it does anything else.
    public let loadsInBackground: Bool
    /// The pool's keyed data sets the running generations hold (their memfds are open in the
    /// host): a plugin asking for one of them by its key maps it instead of building it.
    public let inheritedData: [InheritedDataSet]

    public init(global: GlobalSettings, pool: PoolSettings, generation: Int, listenFD: Int32, statusListenFD: Int32? = nil,
                parkFD: Int32 = -1, reportFD: Int32, masterPID: pid_t, board: GenerationBoard, counters: PoolCounters, loadsInBackground: Bool = false,
                inheritedData: [InheritedDataSet] = []) {
        self.global = global
        self.pool = pool
        self.generation = generation
        self.listenFD = listenFD
        self.statusListenFD = statusListenFD
        self.parkFD = parkFD
        self.reportFD = reportFD
        self.masterPID = masterPID
        self.board = board
        self.counters = counters
        self.loadsInBackground = loadsInBackground
        self.inheritedData = inheritedData
    }
}
