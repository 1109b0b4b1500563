import ForkliftSystem

/// When to start a new host for a pool whose host died: at once the first time, then with
/// doubling delays (1 s up to 60 s) while new hosts keep failing, so a broken plugin on disk
/// does not make the master spin. A host that reaches ready resets its pool's delay.
struct HostRestarts: Equatable {
    private var delays: [String: Double] = [:]
    private var due: [String: MonotonicInstant] = [:]

    /// Records a failure; returns the delay before the next attempt.
    mutating func failed(pool: String, now: MonotonicInstant) -> Double {
        let delay = delays[pool] ?? 0
        delays[pool] = delay == 0 ? 1 : min(delay * 2, 60)
        due[pool] = now.advanced(bySeconds: delay)
        return delay
    }

    /// A restart at a given time, whatever the delays say (an emergency restart has its own).
    mutating func schedule(pool: String, at time: MonotonicInstant) {
        due[pool] = time
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
    func dueTime(pool: String) -> MonotonicInstant? { due[pool] }
}

/// Emergency restarts back off too: the first at once, then 1 s doubling up to 60 s while
/// a pool keeps asking for them; a pool that went 5 minutes without one starts afresh.
struct EmergencyRestarts: Equatable {
    static let forgetAfter = 300.0
    private var last: [String: (at: MonotonicInstant, delay: Double)] = [:]

    static func == (a: EmergencyRestarts, b: EmergencyRestarts) -> Bool {
        a.last.mapValues(\.delay) == b.last.mapValues(\.delay)
    }

    /// Returns the delay before the fresh host starts.
    mutating func record(pool: String, now: MonotonicInstant) -> Double {
        let delay: Double
        if let previous = last[pool], previous.at.seconds(until: now) < Self.forgetAfter {
            delay = previous.delay == 0 ? 1 : min(previous.delay * 2, 60)
        } else {
            delay = 0
        }
        last[pool] = (now, delay)
        return delay
    }
}
