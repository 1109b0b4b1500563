import ForkliftIPC
import ForkliftSystem
import Glibc

/// One pool's status at one moment: its counters and the board of one generation (the live
/// one, for the status page). What every format renders.
public struct PoolStatus: Sendable {
    public var pool: String
    public var processManager: String
    public var generation: Int
    /// "live", "draining", "candidate", ...
    public var role: String
    public var counters: PoolCountersRecord
    public var board: BoardSnapshot
    /// The host's ceiling (dynamic, ondemand) or size (static).
    public var maxChildren: Int
    /// Requests running longer are shown as long (`l`) in the scoreboard line.
    public var slowlogTimeout: Double
    public var now: MonotonicInstant
    /// Seconds since the epoch at `now`.
    public var nowRealtime: Double

    public init(pool: String, processManager: String, generation: Int, role: String, counters: PoolCountersRecord, board: BoardSnapshot,
                maxChildren: Int, slowlogTimeout: Double, now: MonotonicInstant = .now(), nowRealtime: Double = PoolStatus.realtimeNow()) {
        self.pool = pool
        self.processManager = processManager
        self.generation = generation
        self.role = role
        self.counters = counters
        self.board = board
        self.maxChildren = maxChildren
        self.slowlogTimeout = slowlogTimeout
        self.now = now
        self.nowRealtime = nowRealtime
    }

    /// Seconds since the pool started (PHP-FPM's "start since").
    public var startSince: Int { max(0, Int(counters.started.seconds(until: now))) }

    /// The epoch second when `instant` was.
    public func realtime(_ instant: MonotonicInstant) -> Int { Int((nowRealtime - max(0, instant.seconds(until: now))).rounded(.down)) }

    public static func realtimeNow() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    public var idle: Int { board.idle }
    public var active: Int { board.active }
    public var total: Int { board.total }
    /// Standby workers waiting to take a place (not among the processes above).
    public var standby: Int { board.hostState?.standbyWorkers ?? 0 }

    /// Seconds every worker has been busy, if they all are.
    public var allBusyFor: Double? { board.hostState?.allBusySince.map { $0.seconds(until: now) } }

    /// The pool's condition in a few words: "normal", "workers die right after starting ...".
    public var condition: String {
        guard let state = board.hostState else { return "unknown" }
        switch state.condition {
        case .normal: return allBusyFor.map { "all workers busy for \(Formatting.oneDecimal($0)) s" } ?? "normal"
        case .stopping: return "stopping"
        case .backingOff:
            let next = state.backoffUntil.map { " (next fork in \(Formatting.oneDecimal(max(0, now.seconds(until: $0)))) s)" } ?? ""
            return "workers die right after starting: \(state.consecutiveFailures) in a row\(next)"
        }
    }

    /// One letter per worker slot, as POE::Component::Daemon prints its scoreboard.
    public var scoreboardLine: String {
        let used = max(board.hostState?.highWater ?? 0, (board.workers.map(\.slot).max() ?? -1) + 1)
        var letters = [Character](repeating: ".", count: used)
        for worker in board.workers where worker.slot < used {
            let slow = slowlogTimeout > 0 && (worker.requestAge(at: now) ?? 0) >= slowlogTimeout
            letters[worker.slot] = worker.state.letter(slow: slow)
        }
        return String(letters)
    }
}

/// The formats of PHP-FPM's status page, chosen by its query string.
public enum StatusFormat: String, Sendable, CaseIterable {
    case text, json, openmetrics, html

    /// `json`, `html`, `openmetrics` and `full`, as PHP-FPM reads them: `?json&full`.
    public static func parse(query: String) -> (format: StatusFormat, full: Bool) {
        let words = Set(query.split(separator: "&").map { String($0.split(separator: "=").first ?? "") })
        let format = StatusFormat.allCases.first { $0 != .text && words.contains($0.rawValue) } ?? .text
        return (format, words.contains("full"))
    }

    public var contentType: String {
        switch self {
        case .text: "text/plain; charset=utf-8"
        case .json: "application/json"
        case .openmetrics: "application/openmetrics-text; version=1.0.0; charset=utf-8"
        case .html: "text/html; charset=utf-8"
        }
    }
}
