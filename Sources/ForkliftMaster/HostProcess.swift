import ForkliftConfig
import ForkliftIPC
import ForkliftSystem
import Glibc

/// The master's view of one host process: one pool, one generation.
struct HostProcess {
    enum Role: Equatable {
        /// Part of a reload (or the first start) that is not committed yet: its workers wait
        /// at the gate and accept nothing.
        case candidate
        /// Started alone to replace a live host that died; goes live as soon as it is ready.
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
    /// Its slot in the scoreboard.
    let slotIndex: Int
    var role: Role
    /// Read end of the host's report pipe; -1 once the host closed it.
    var reportFD: Int32
    var reports = LineBuffer()
    /// The host's ready summary ("plugins=hello@1.0.0 ... load_ms=3.1 ready_ms=9.8").
    var summary: String?
    /// What the host said when it failed, if it did.
    var failure: String?
    /// Whether and until when it loads at idle CPU priority; nil: normal priority throughout.
    var backgroundLoading: BackgroundLoading?

    var isReady: Bool { summary != nil }
    var label: String { "pool \(pool.name) gen \(generation) (host pid \(pid))" }

    var isDraining: Bool {
        if case .draining = role { return true }
        return false
    }
}
