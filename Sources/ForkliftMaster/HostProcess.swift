import ForkliftConfig
import ForkliftIPC
import ForkliftSystem
import Glibc

/// The master's view of one host process (one pool, one generation).
struct HostProcess {
    enum State { case starting, ready }

    let pool: PoolSettings
    let generation: Int
    let pid: pid_t
    /// Read end of the host's report pipe; -1 once the host closed it.
    var reportFD: Int32
    var reports = LineBuffer()
    var state = State.starting
    /// What the host said when it failed, if it did.
    var failure: String?

    var label: String { "pool \(pool.name) gen \(generation) (host pid \(pid))" }
}
