import ForkliftSystem
import Glibc

/// The `status_listen` responder's life, as the host's core sees it: one process while the
/// generation is live, replaced a second after it dies (never in a loop), TERMed on stop.
struct ResponderLife: Equatable {
    static let restartDelay = 1.0

    private(set) var pid: pid_t?
    private(set) var restartAt: MonotonicInstant?
    private var forking = false

    mutating func start(now: MonotonicInstant) -> [PoolCore.Action] {
        guard pid == nil, !forking else { return [] }
        forking = true
        restartAt = nil
        return [.forkResponder]
    }

    mutating func forked(_ pid: pid_t) {
        forking = false
        self.pid = pid
    }

    mutating func failed(_ reason: String, now: MonotonicInstant) -> [PoolCore.Action] {
        pid = nil
        forking = false
        restartAt = now.advanced(bySeconds: Self.restartDelay)
        return [.log(.error, "\(reason); another starts in \(Formatting.seconds(Self.restartDelay))")]
    }

    mutating func stop() -> [PoolCore.Action] {
        restartAt = nil
        return pid.map { [.signal($0, .term)] } ?? []
    }

    mutating func exitedWhileStopping() -> [PoolCore.Action] {
        pid = nil
        return []
    }
}
