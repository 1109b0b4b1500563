import ForkliftSystem
import Glibc

/// Workers that die right after they start (before their first request, before they were
/// up a second): each one doubles the delay before the next fork, 0.1 s up to 5 s, so a
/// plugin that crashes every worker at once does not make the host spin — and the pool
/// recovers by itself within 5 s of the cause going away. The first healthy worker resets
/// it. A worker that dies after serving is no failed start: it is replaced at once.
///
/// Logs one line when the pool starts backing off and one when it recovers; the failures in
/// between go to the debug log (the reason is logged again if it changes).
struct StartFailures: Equatable {
    static let firstDelay = 0.1
    static let longestDelay = 5.0

    private(set) var consecutive = 0
    private(set) var delay = 0.0
    private(set) var backoffUntil: MonotonicInstant?
    /// What each worker said when its init failed (it says so before it exits).
    var reasons: [Int32: String] = [:]
    private var loggedReason: String?

    var isBackingOff: Bool { consecutive >= 2 }

    /// May a worker be forked now?
    func allowsFork(now: MonotonicInstant) -> Bool { backoffUntil.map { now >= $0 } ?? true }

    /// A worker died before it proved itself. The first is replaced at once.
    mutating func failedStart(pool: String, pid: Int32 = 0, description: String, now: MonotonicInstant) -> [PoolCore.Action] {
        consecutive += 1
        let reason = reasons.removeValue(forKey: pid).map { "\(description): \($0)" } ?? description
        if consecutive == 1 {
            return [.log(.error, "\(reason); replacing it")]
        }
        delay = delay == 0 ? Self.firstDelay : min(delay * 2, Self.longestDelay)
        backoffUntil = now.advanced(bySeconds: delay)
        if consecutive == 2 || loggedReason != reasonKind(reason) {
            loggedReason = reasonKind(reason)
            return [.log(.error, "pool \(pool): workers die right after they start (\(consecutive) in a row, the last: \(reason)); forking new ones with growing delays, up to \(Formatting.oneDecimal(Self.longestDelay)) s, until one stays up")]
        }
        return [.log(.debug, "\(reason); next fork in \(Formatting.oneDecimal(delay)) s")]
    }

    /// A fork itself failed (EAGAIN: out of processes, memory).
    mutating func forkFailed(now: MonotonicInstant) {
        delay = delay == 0 ? Self.firstDelay : min(delay * 2, Self.longestDelay)
        backoffUntil = now.advanced(bySeconds: delay)
    }

    /// A worker proved itself: back to forking at once.
    mutating func recovered(pool: String, pid: Int32) -> [PoolCore.Action] {
        defer {
            consecutive = 0
            delay = 0
            backoffUntil = nil
            loggedReason = nil
        }
        guard isBackingOff else { return [] }
        return [.log(.notice, "pool \(pool): worker \(pid) stays up after \(consecutive) workers died right after starting; back to normal")]
    }

    /// The backoff deadline has passed: it stays in effect only as a delay for the next failure.
    mutating func deadlinePassed(now: MonotonicInstant) {
        if let until = backoffUntil, now >= until { backoffUntil = nil }
    }

    func summary(now: MonotonicInstant) -> String {
        guard consecutive > 0 else { return "no failed starts" }
        let next = backoffUntil.map { ", next fork in \(Formatting.oneDecimal(max(0, now.seconds(until: $0)))) s" } ?? ""
        return "\(consecutive) failed starts in a row\(next)"
    }

    /// Two failures have the same kind if their texts differ only in numbers (pids, times).
    private func reasonKind(_ reason: String) -> String {
        var kind = ""
        for character in reason where !(character.isNumber && kind.last == "#") {
            kind.append(character.isNumber ? "#" : character)
        }
        return kind
    }
}

/// PHP-FPM's emergency restart: `threshold` workers crashing within `interval` means
/// something is broken in the host's state; the master replaces the host. Crashes are deaths
/// by SIGSEGV and SIGBUS, as PHP-FPM counts them, and by SIGILL, SIGFPE, SIGABRT and SIGTRAP
/// (a Swift trap, an abort): never TERM or KILL, which an operator or the OOM killer sends —
/// an OOM kill must not make the host preload all its data again.
struct EmergencyWindow: Equatable {
    let threshold: Int
    let interval: Double
    private var deaths: [MonotonicInstant] = []

    init(threshold: Int, interval: Double) {
        self.threshold = threshold
        self.interval = interval
    }

    static func isCrash(_ signal: UnixSignal) -> Bool {
        [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP].contains(signal.rawValue)
    }

    /// A worker crashed; returns the reason when the threshold is reached (once: the window
    /// starts afresh).
    mutating func record(now: MonotonicInstant) -> String? {
        guard threshold > 0, interval > 0 else { return nil }
        deaths.append(now)
        deaths.removeAll { $0.seconds(until: now) > interval }
        guard deaths.count >= threshold else { return nil }
        deaths = []
        return "\(threshold) workers crashed within \(Formatting.seconds(interval))"
    }
}
