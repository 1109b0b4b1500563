import ForkliftSystem

/// Connections closed because their address is not in `listen_allowed_clients`: a line for a
/// peer address the first time, then at most one every `interval` for the same address, saying
/// how many were refused since its last line. A client retrying in a loop, or a scan, must not
/// fill the log, and one address's flood must not hide another's first refusal.
///
/// Pure: the worker gives the time and writes the lines. Each worker keeps its own (they do not
/// share memory for this), so a flood spread over N workers may log N lines per interval.
struct RefusedClients {
    static let interval = 10.0
    /// Addresses remembered at most; past that, those whose interval is over are forgotten
    /// (with what they had not reported yet), and while all are recent the addresses beyond
    /// them share one line per interval.
    static let mostRemembered = 1024
    static let others = "other addresses"

    private struct Peer {
        var loggedAt: MonotonicInstant
        var since = 0
    }

    private var peers: [String: Peer] = [:]

    /// A connection from `address` was refused: the line to log, or nil when that address had
    /// its line less than `interval` ago.
    mutating func refused(_ address: String, now: MonotonicInstant) -> String? {
        var key = address
        if peers[key] == nil, peers.count >= Self.mostRemembered {
            peers = peers.filter { $0.value.loggedAt.seconds(until: now) < Self.interval }
            if peers.count >= Self.mostRemembered { key = Self.others }
        }
        let line = key == Self.others
            ? Self.line(address) + "; more than \(Self.mostRemembered) addresses were refused in \(Formatting.seconds(Self.interval)), the others share this line"
            : Self.line(address)
        guard var peer = peers[key] else {
            peers[key] = Peer(loggedAt: now)
            return line
        }
        guard peer.loggedAt.seconds(until: now) >= Self.interval else {
            peer.since += 1
            peers[key] = peer
            return nil
        }
        peers[key] = Peer(loggedAt: now)
        guard peer.since > 0 else { return line }
        return line + " (and \(peer.since) more since its last line \(Formatting.seconds(peer.loggedAt.seconds(until: now))) ago)"
    }

    var remembered: Int { peers.count }

    private static func line(_ address: String) -> String {
        "refused a connection from \(address): not in listen_allowed_clients (closed unread; at most one line per address every \(Formatting.seconds(interval)))"
    }
}
