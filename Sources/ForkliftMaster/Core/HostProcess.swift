import ForkliftConfig
import ForkliftSystem
import Glibc

/// What the master asks the shell to fork: one pool, one generation, and why.
struct HostSpec: Equatable {
    enum Purpose: Equatable {
        /// Part of a reload (or the first start).
        case candidate
        /// Alone, for a pool whose host died or asked to be replaced.
        case replacement
    }

    let pool: PoolSettings
    let generation: Int
    let global: GlobalSettings
    let purpose: Purpose
    /// May the master lower it to idle CPU priority while it loads?
    let loadsInBackground: Bool
    /// The worker count set at run time, if any.
    let scaleTarget: Int
}

/// The master's view of one host process: one pool, one generation.
struct HostProcess: Equatable {
    enum Role: Equatable {
        /// Part of a reload (or the first start) that is not committed yet: its workers wait
        /// at the gate and accept nothing.
        case candidate
        /// Started alone to replace a live host that died (or asked to be replaced); goes
        /// live as soon as it is ready.
        case replacement
        /// Serving.
        case live
        /// Replaced by a newer generation (or its pool was removed, or we are stopping):
        /// TERMed, finishing in-flight requests; KILLed at `deadline`.
        case draining(deadline: MonotonicInstant?)
    }

    let pool: PoolSettings
    let generation: Int
    let pid: pid_t
    let started: MonotonicInstant
    var role: Role
    /// The host's ready summary ("pool=www gen=2 ... load_ms=3.1 ready_ms=9.8").
    var summary: String?
    /// What the host said when it failed, if it did.
    var failure: String?
    /// Whether and until when it loads at idle CPU priority; nil: normal priority throughout.
    var backgroundLoading: BackgroundLoading?
    /// Never live: nothing is in flight, so stopping it may KILL at once.
    var neverServed: Bool { role == .candidate || (role == .replacement && summary == nil) }

    var isReady: Bool { summary != nil }
    var label: String { "pool \(pool.name) gen \(generation) (host pid \(pid))" }

    var isDraining: Bool {
        if case .draining = role { return true }
        return false
    }

    /// Serving its pool, or starting to (a replacement); a candidate serves nobody until commit.
    var covers: Bool { role == .live || role == .replacement }
}

/// One reload in flight (the first start is one too): a new generation for every pool of
/// the new configuration, committed all together once every one of them is ready, or rolled
/// back as a whole at the first failure.
struct ReloadTransaction: Equatable {
    let configuration: Configuration
    /// Host pid of each pool's candidate generation.
    var candidates: [String: pid_t] = [:]
    /// Sockets opened for this reload, closed again on rollback.
    var openedAddresses: [ListenAddress] = []
    let started: MonotonicInstant
    /// Control clients waiting for the outcome.
    var waiters: [MasterCore.ClientID] = []
    /// True for the first start: a failure there means refusing to start.
    let isInitial: Bool

    init(configuration: Configuration, isInitial: Bool, now: MonotonicInstant) {
        self.configuration = configuration
        self.isInitial = isInitial
        started = now
    }

    var deadline: MonotonicInstant { started.advanced(bySeconds: configuration.global.reloadTimeout) }
    var isComplete: Bool { candidates.count == configuration.pools.count }
}

/// The strict switch between generations: the old ones are retired and TERMed, and the new
/// ones open their gates only once no old worker is still waiting for a connection, so no
/// client ever gets an answer from old code after one from new code. The master waits for
/// that in its poll (it asks the shell to count, every `checkInterval`), at most `limit`.
struct GenerationSwitch: Equatable {
    enum Purpose: Equatable {
        /// A reload's commit.
        case commit(ReloadTransaction)
        /// A replacement host takes over its pool.
        case replacement
        /// The old master of an upgrade hands over to the new one.
        case handoff
    }

    static let checkInterval = 0.0005
    static let limit = 0.2

    let retiring: [pid_t]
    let promoting: [pid_t]
    let purpose: Purpose
    let started: MonotonicInstant
    var nextCheck: MonotonicInstant

    var deadline: MonotonicInstant { started.advanced(bySeconds: Self.limit) }
}
