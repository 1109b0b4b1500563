import ForkliftSystem

/// When to start a new host for a pool whose host died: at once the first time, then with
/// doubling delays (1 s up to 60 s) while new hosts keep failing, so a broken plugin on disk
/// does not make the master spin. A host that reaches ready resets its pool's delay.
struct HostRestarts {
    private var delays: [String: Double] = [:]
    private var due: [String: MonotonicInstant] = [:]

    /// Records a failure; returns the delay before the next attempt.
    mutating func failed(pool: String, now: MonotonicInstant = .now()) -> Double {
        let delay = delays[pool] ?? 0
        delays[pool] = delay == 0 ? 1 : min(delay * 2, 60)
        due[pool] = now.advanced(bySeconds: delay)
        return delay
    }

    /// The attempt that was due has been made.
    mutating func attempted(pool: String) {
        due[pool] = nil
    }

    mutating func succeeded(pool: String) {
        delays[pool] = nil
        due[pool] = nil
    }

    func isDue(pool: String, now: MonotonicInstant) -> Bool {
        guard let at = due[pool] else { return false }
        return now >= at
    }

    func nextDue(among pools: [String]) -> MonotonicInstant? { pools.compactMap { due[$0] }.min() }
}
