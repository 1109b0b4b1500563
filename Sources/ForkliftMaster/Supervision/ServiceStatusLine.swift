import ForkliftStatus

/// systemd's STATUS= line, what `systemctl status` shows under "Status:": the phase, then
/// live counts from the pools' scoreboards, e.g. "ready: 2 pools, 8 workers (3 busy), 1234 requests".
enum ServiceStatusLine {
    /// `hosts`: how many host processes are left, what a stop waits for (draining hosts
    /// count in no pool's status any more).
    static func make(state: ServiceSupervision.State, pools: [(workers: Int, busy: Int, requests: Int)], hosts: Int) -> String {
        if state == .stopping { return "stopping: \(plural(hosts, "host")) left" }
        let phase = switch state {
        case .starting: "starting"
        case .ready: "ready"
        case .reloading: "reloading"
        case .stopping: "stopping"
        }
        let workers = pools.map(\.workers).reduce(0, +)
        let busy = pools.map(\.busy).reduce(0, +)
        let requests = pools.map(\.requests).reduce(0, +)
        return "\(phase): \(plural(pools.count, "pool")), \(plural(workers, "worker")) (\(busy) busy), \(plural(requests, "request"))"
    }

    private static func plural(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

    static func make(state: ServiceSupervision.State, statuses: [PoolStatus], hosts: Int) -> String {
        make(state: state, pools: statuses.map { ($0.total, $0.active, $0.counters.accepted) }, hosts: hosts)
    }
}
