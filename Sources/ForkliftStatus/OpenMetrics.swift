import ForkliftIPC
import ForkliftSystem

/// The status in the OpenMetrics text format (Prometheus's exposition format), as PHP-FPM's
/// `?openmetrics` gives it, with `forklift_` for `phpfpm_` and the pool as a label.
public enum OpenMetrics {
    public static func render(_ pools: [PoolStatus], full: Bool) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# TYPE \(name) \(type)\n# HELP \(name) \(help)\n"
            let sample = type == "counter" ? name + "_total" : name
            for (labels, value) in samples { out += "\(sample){\(labels)} \(value)\n" }
        }
        func each(_ value: (PoolStatus) -> Int) -> [(labels: String, value: String)] {
            pools.map { ("pool=\(label($0.pool))", String(value($0))) }
        }
        family("forklift_up", "gauge", "Whether the pool's status could be read.", each { _ in 1 })
        family("forklift_start_since_seconds", "gauge", "Seconds since the pool started.", each(\.startSince))
        family("forklift_accepted_connections", "counter", "Requests accepted by the pool.", each(\.counters.accepted))
        family("forklift_listen_queue", "gauge", "Connections waiting to be accepted.", each(\.counters.listenQueue))
        family("forklift_max_listen_queue", "gauge", "The most connections seen waiting.", each(\.counters.maxListenQueue))
        family("forklift_listen_queue_length", "gauge", "The listen queue's capacity.", each(\.counters.listenQueueLength))
        family("forklift_idle_processes", "gauge", "Workers not serving a request.", each(\.idle))
        family("forklift_active_processes", "gauge", "Workers serving a request.", each(\.active))
        family("forklift_total_processes", "gauge", "Workers.", each(\.total))
        family("forklift_max_active_processes", "gauge", "The most workers active at once.", each { max($0.counters.maxActive, $0.active) })
        family("forklift_max_children_reached", "counter", "Times every worker was busy with connections waiting.", each(\.counters.maxChildrenReached))
        family("forklift_slow_requests", "counter", "Requests that ran past request_slowlog_timeout.", each(\.counters.slowRequests))
        family("forklift_max_children", "gauge", "The pool's size (static) or ceiling.", each(\.maxChildren))
        family("forklift_standby_processes", "gauge", "Standby workers waiting to take a place.", each(\.standby))
        family("forklift_generation", "gauge", "The generation the figures are of.", each(\.generation))
        if full {
            var requests: [(String, String)] = []
            var duration: [(String, String)] = []
            var states: [(String, String)] = []
            for pool in pools {
                for worker in pool.board.workers {
                    // The slot keeps label sets unique (a slot being forked into has no pid yet).
                    let labels = "pool=\(label(pool.pool)),slot=\(label(String(worker.slot))),pid=\(label(String(worker.pid)))"
                    requests.append((labels, String(worker.requests)))
                    duration.append((labels, String(worker.requestAge(at: pool.now) ?? worker.lastDuration)))
                    // A stateset's state is a label named after the metric itself.
                    for state in WorkerState.allCases where state != .free {
                        states.append((labels + ",forklift_process_state=\(label(state.description))", worker.state == state ? "1" : "0"))
                    }
                }
            }
            family("forklift_process_requests", "counter", "Requests served by the worker.", requests)
            family("forklift_process_request_duration_seconds", "gauge", "How long the current (or last) request ran.", duration)
            family("forklift_process_state", "stateset", "What the worker is doing.", states)
        }
        return out + "# EOF\n"
    }

    /// A label value, quoted and escaped.
    static func label(_ value: String) -> String {
        var out = "\""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out + "\""
    }
}
