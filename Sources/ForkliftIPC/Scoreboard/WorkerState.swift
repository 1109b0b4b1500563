import CForkliftSys

/// What a worker is doing, as its slot in the scoreboard says.
///
/// | state | PHP-FPM's process state | POE::Component::Daemon | Apache |
/// |---|---|---|---|
/// | free | — | `.` | `.` |
/// | starting | — | `F` | `S` |
/// | idle | Idle | `w` | `_` |
/// | reading | Reading headers | `r` | `R` |
/// | running | Running | `r` (`l` once slow) | `W` |
/// | finishing | Finishing | `r` | `C` |
/// | exiting | Ending | `e` | `G` |
/// | kept | Keepalive | `k` | `K` |
public enum WorkerState: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case free = 0, starting, idle, reading, running, finishing, exiting
    /// Between requests on a connection the client keeps open (FCGI_KEEP_CONN): not waiting
    /// for new connections, so busy as far as other clients are concerned (Apache's `K`).
    case kept

    init(raw: UInt32) {
        self = WorkerState(rawValue: raw) ?? .free
    }

    /// Serving a request: counted as an "active process".
    /// Kept counts too: such a worker takes no new connection.
    /// Inside a request: what request timeouts apply to (a kept connection between requests is not).
    public var isInRequest: Bool { self == .reading || self == .running || self == .finishing }

    public var isActive: Bool { self == .reading || self == .running || self == .finishing || self == .kept }

    public var description: String {
        switch self {
        case .free: "free"
        case .starting: "starting"
        case .idle: "idle"
        case .reading: "reading"
        case .running: "running"
        case .finishing: "finishing"
        case .exiting: "exiting"
        case .kept: "kept"
        }
    }

    /// PHP-FPM's name for the state (its status page's `state` field).
    public var phpFPMName: String {
        switch self {
        case .free: "Free"
        case .starting: "Starting"
        case .idle: "Idle"
        case .reading: "Reading headers"
        case .running: "Running"
        case .finishing: "Finishing"
        case .exiting: "Ending"
        case .kept: "Keepalive"
        }
    }

    /// One character per worker, as POE::Component::Daemon's scoreboard prints them; a
    /// request running past `request_slowlog_timeout` shows as `l` (long).
    public func letter(slow: Bool = false) -> Character {
        switch self {
        case .free: "."
        case .starting: "F"
        case .idle: "w"
        case .reading, .finishing: "r"
        case .running: slow ? "l" : "r"
        case .exiting: "e"
        case .kept: "k"
        }
    }
}
