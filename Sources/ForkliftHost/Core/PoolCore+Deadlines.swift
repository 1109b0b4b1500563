import ForkliftIPC
import ForkliftSystem
import Glibc

/// request_terminate_timeout and request_slowlog_timeout deadlines, and the backtraces workers send.
extension PoolCore {
    /// Grace between the stack request and KILL.
    static let terminateGrace = 0.5

    /// When the next request passes its request_terminate_timeout or request_slowlog_timeout,
    /// or a terminated worker is due its KILL (from the last observation).
    var requestDeadlines: [MonotonicInstant?] {
        var deadlines: [MonotonicInstant?] = Array(terminating.values)
        guard let observation = lastObservation, phase == .serving else { return deadlines }
        for worker in workers.values where terminating[worker.pid] == nil && worker.dismissed != .terminated {
            guard let record = observation.records[worker.slot], record.pid == worker.pid,
                  record.state.isInRequest else { continue }
            let timeout = settings.terminateTimeout(plugin: record.plugin)
            if timeout > 0 { deadlines.append(record.requestStarted.advanced(bySeconds: timeout)) }
            // A request seen running is due its slow-log record at its own moment, not a watch later.
            if settings.slowlogTimeout > 0 && !watch.slowRequests.contains(.init(pid: worker.pid, started: record.requestStarted.nanoseconds)) {
                deadlines.append(record.requestStarted.advanced(bySeconds: settings.slowlogTimeout))
            }
        }
        return deadlines
    }

    /// Workers whose request ran past its request_terminate_timeout: their stack, then KILL.
    mutating func enforceTerminateTimeouts(_ observation: Observation, now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        for (pid, killAt) in terminating where now >= killAt {
            terminating[pid] = now.advanced(bySeconds: 3600) // sent; it exits
            actions.append(.signal(pid, .kill))
        }
        for worker in workers.values where terminating[worker.pid] == nil && worker.dismissed != .terminated {
            guard let record = observation.records[worker.slot], record.pid == worker.pid,
                  record.state.isInRequest else { continue }
            let timeout = settings.terminateTimeout(plugin: record.plugin)
            guard timeout > 0, let age = record.requestAge(at: now), age >= timeout else { continue }
            dismiss(worker.pid, as: .terminated)
            terminating[worker.pid] = now.advanced(bySeconds: Self.terminateGrace)
            let what = "pool \(settings.pool): worker \(worker.pid) has run \(record.method) \(record.uri) (plugin \(record.plugin.isEmpty ? "-" : record.plugin)) for \(Formatting.oneDecimal(age)) s, past request_terminate_timeout (\(Formatting.seconds(timeout))): killing it"
            actions.append(.log(.error, what))
            stackRequests[worker.pid] = what
            actions.append(.signal(worker.pid, .dump))
        }
        return actions
    }

    mutating func backtrace(_ pid: pid_t, kind: String, signal: UnixSignal, frames: [String]) -> [Action] {
        let stack = frames.isEmpty ? "  (no frames)" : frames.map { "  " + $0 }.joined(separator: "\n")
        if kind == "crash" {
            return [.log(.error, "worker \(pid) crashed (\(signal)); its stack:\n\(stack)")]
        }
        guard let why = stackRequests.removeValue(forKey: pid) else {
            return [.log(.notice, "stack of worker \(pid) (\(signal)):\n\(stack)")]
        }
        let record = "\(why); its stack:\n\(stack)"
        return terminating[pid] != nil ? [.log(.error, record)] : [.slowlog(record)]
    }
}
