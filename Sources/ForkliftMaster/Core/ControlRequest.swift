import ForkliftSystem
import Glibc

/// One command line a control client sends (`forklift reload`, `status --json`, ...).
enum ControlRequest: Equatable {
    case reload, stop, upgrade, dump
    case status(StatusQuery)
    case scale(pool: String, workers: Int)
    case unknown(String)

    static let usage = "expected reload, stop, upgrade, dump, status [json] [full], or scale POOL N"

    init(line: String) {
        let words = line.split(separator: " ").map(String.init)
        switch words.first {
        case "reload" where words.count == 1: self = .reload
        case "stop" where words.count == 1: self = .stop
        case "upgrade" where words.count == 1: self = .upgrade
        case "dump" where words.count == 1: self = .dump
        case "status":
            var query = StatusQuery()
            for word in words.dropFirst() {
                switch word {
                case "json": query.json = true
                case "full": query.full = true
                default:
                    self = .unknown(line)
                    return
                }
            }
            self = .status(query)
        case "scale" where words.count == 3:
            guard let count = Int(words[2]) else {
                self = .unknown(line)
                return
            }
            self = .scale(pool: words[1], workers: count)
        default:
            self = .unknown(line)
        }
    }
}

/// What `forklift status` asks for.
struct StatusQuery: Equatable {
    var json = false
    /// One entry per worker.
    var full = false
}

/// What the new master of an upgrade tells the old one.
enum UpgradeMessage: Equatable {
    /// Its first generation is ready, gated: retire yours, then say go.
    case ready
    case failed(String)
    /// It closed the channel (it exited).
    case closed

    init?(line: String) {
        // "ready" may carry what the new binary supports ("ready parking"); the shell reads that.
        if line == "ready" || line.hasPrefix("ready ") { self = .ready } else if line.hasPrefix("failed ") { self = .failed(String(line.dropFirst(7))) } else { return nil }
    }

    /// What this binary's master can take over besides the sockets: "parking", the parked
    /// connections and their channels (a binary before it leaves them in a queue nobody reads).
    static let capabilities = "parking"

    var line: String {
        switch self {
        case .ready: "ready \(Self.capabilities)\n"
        case .failed(let reason): "failed " + String(reason.map { $0.isNewline ? " " : $0 }) + "\n"
        case .closed: ""
        }
    }
}

/// What the old master of an upgrade tells the new one.
enum HandoffMessage: Equatable {
    /// No old worker waits for a connection any more: serve.
    case go
    /// The old master gave up on this upgrade: leave.
    case abort
    /// The old master is gone: nobody else serves, so serve.
    case closed

    init?(line: String) {
        switch line {
        case "go": self = .go
        case "abort": self = .abort
        default: return nil
        }
    }

    var line: String {
        switch self {
        case .go: "go\n"
        case .abort: "abort\n"
        case .closed: ""
        }
    }
}

/// The old master's side of an upgrade.
struct UpgradeInFlight: Equatable {
    var pid: pid_t?
    let waiter: MasterCore.ClientID?
    let started: MonotonicInstant
    /// The new master loads its first generation within reload_timeout, or fails by itself;
    /// this one gives up a little later, so that a new master that hangs cannot block
    /// reloads for ever.
    let deadline: MonotonicInstant
    /// Its first generation is ready and waits for this master to retire its own.
    var switching = false
}

/// The new master's side of an upgrade.
struct HandoffProgress: Equatable {
    static let goTimeout = 10.0

    /// Its first generation is ready: waiting for the old master's "go".
    var awaitingGoSince: MonotonicInstant?
    /// The old master closed the channel before this one was ready: it is gone.
    var previousGone = false
}
