import ForkliftSystem
import Glibc

/// Processes a plugin started in a worker, once that worker is gone (POE::Component::Daemon's
/// foreign children). The host is the child subreaper of everything below it, so what a worker
/// leaves behind — a helper it spawned, a process forked inside a handler, even one that
/// double-forked and called setsid — becomes the host's child instead of init's. The host sends
/// each one TERM when it is adopted and KILL if it is still there `grace` seconds later, so
/// nothing a plugin started outlives its worker for long, nor the server at all.
///
/// Pure: it is told which children the host has and when; it answers whom to signal.
struct ForeignChildren {
    static let grace = 5.0

    /// Adopted children and when each was sent TERM.
    private(set) var terminated: [pid_t: MonotonicInstant] = [:]

    /// `children` are the host's children now that are neither workers nor the responder:
    /// returns those to TERM (the ones not TERMed yet).
    mutating func adopted(_ children: [pid_t], now: MonotonicInstant) -> [pid_t] {
        let new = children.filter { terminated[$0] == nil }.sorted()
        for pid in new { terminated[pid] = now }
        return new
    }

    /// A child was reaped (foreign or not: only foreign ones are here).
    mutating func reaped(_ pid: pid_t) {
        terminated[pid] = nil
    }

    /// When the next one is due for KILL.
    var nextDeadline: MonotonicInstant? {
        terminated.values.min().map { $0.advanced(bySeconds: Self.grace) }
    }

    /// Those TERMed `grace` ago and still there: KILL them (once; they are forgotten here and
    /// reaped when they go).
    mutating func due(now: MonotonicInstant) -> [pid_t] {
        let late = terminated.filter { now >= $0.value.advanced(bySeconds: Self.grace) }.map(\.key).sorted()
        for pid in late { terminated[pid] = nil }
        return late
    }
}
