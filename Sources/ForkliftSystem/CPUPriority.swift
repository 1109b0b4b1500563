import Glibc

/// The CPU scheduling class of a process: normal, or idle (`SCHED_IDLE`: it runs only on CPU
/// time no normal process wants, and any normal process that wakes up preempts it at once).
///
/// A reload's new generation loads at idle priority so that its preload competes as little
/// as possible with the generation that serves. Nice +19 is not enough for that: measured
/// on Linux 6.18, a nice +19 process faulting in memory still delayed the serving workers'
/// wakeups by milliseconds, where a `SCHED_IDLE` one did not.
public enum CPUPriority: Equatable, Sendable {
    case normal
    case idle

    /// Sets the priority of one thread (the main thread of a single-threaded process: its pid).
    public static func set(_ priority: CPUPriority, of pid: pid_t) throws(SystemError) {
        var parameters = sched_param(sched_priority: 0)
        let policy: Int32 = priority == .idle ? idlePolicy : SCHED_OTHER
        if sched_setscheduler(pid, policy, &parameters) != 0 {
            throw SystemError("sched_setscheduler(\(pid), \(priority == .idle ? "SCHED_IDLE" : "SCHED_OTHER"))")
        }
    }

    /// The priority of `pid`, nil if it is gone (or has a real-time policy, which Forklift never sets).
    public static func of(_ pid: pid_t) -> CPUPriority? {
        switch sched_getscheduler(pid) {
        case SCHED_OTHER: .normal
        case idlePolicy: .idle
        default: nil
        }
    }

    /// Whether this process, and the children it starts, may go back from idle to normal
    /// priority: Linux treats leaving `SCHED_IDLE` like lowering a nice value from 20 to 0,
    /// which takes root, `CAP_SYS_NICE`, or an `RLIMIT_NICE` of at least 20. Without it, a
    /// process lowered to idle would stay there.
    public static var canLeaveIdle: Bool {
        if geteuid() == 0 || hasEffectiveCapability(23 /* CAP_SYS_NICE */) { return true }
        var limit = rlimit()
        return getrlimit(__rlimit_resource_t(__RLIMIT_NICE.rawValue), &limit) == 0 && limit.rlim_cur >= 20
    }

    /// `SCHED_IDLE` (5), which Glibc declares only under `_GNU_SOURCE`.
    static let idlePolicy: Int32 = 5

    /// From the `CapEff` line of /proc/self/status.
    static func hasEffectiveCapability(_ bit: Int) -> Bool {
        guard let file = fopen("/proc/self/status", "r") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("CapEff:") else { continue }
            let hex = text.dropFirst("CapEff:".count).trimmingCharacters(in: " \t\n")
            return UInt64(hex, radix: 16).map { $0 & (1 << UInt64(bit)) != 0 } ?? false
        }
        return false
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var result = self
        while let first = result.first, set.contains(first) { result = result.dropFirst() }
        while let last = result.last, set.contains(last) { result = result.dropLast() }
        return result
    }
}
