import ForkliftConfig
import ForkliftSystem
import Glibc

/// One reload in flight (the first start is one too): a new generation for every pool of
/// the new configuration, committed all together once every one of them is ready, or rolled
/// back as a whole at the first failure.
struct ReloadTransaction {
    let configuration: Configuration
    /// Host pid of each pool's candidate generation.
    var candidates: [String: pid_t] = [:]
    /// Sockets opened for this reload, closed again on rollback.
    var openedAddresses: [ListenAddress] = []
    let started: MonotonicInstant
    let deadline: MonotonicInstant
    /// Control clients waiting for the outcome.
    var waiters: [Int32] = []
    /// True for the first start: a failure there means refusing to start.
    let isInitial: Bool

    init(configuration: Configuration, isInitial: Bool, now: MonotonicInstant = .now()) {
        self.configuration = configuration
        self.isInitial = isInitial
        started = now
        deadline = now.advanced(bySeconds: configuration.global.reloadTimeout)
    }
}
