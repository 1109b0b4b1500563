import ForkliftConfig
import ForkliftSystem

/// The idle kept connections workers handed to the master (see `ParkingChannel`), and what
/// becomes of each: sent back to the pool's workers when the client sends its next request
/// on it, closed when the client closes it, when it has been idle for its pool's
/// `keepalive_timeout`, or when its pool holds more than `listen_backlog` of them (the oldest
/// first). The shell polls the connections, reads whether a readable one has a request or
/// its end, and carries out the actions.
struct ParkedConnections {
    struct Limits: Equatable {
        /// 0: no limit.
        var keepaliveTimeout: Double
        var most: Int
    }

    struct Connection: Equatable {
        let fd: Int32
        let address: ListenAddress
        let idleSince: MonotonicInstant
        let parked: MonotonicInstant
    }

    enum Action: Equatable {
        /// Back to the pool's workers; the shell closes its copy once sent.
        case forward(Int32, ListenAddress)
        case close(Int32, reason: String)
    }

    /// Per listening address, from the live configuration.
    var limits: [ListenAddress: Limits] = [:]
    /// Over all pools (the master's descriptors are finite).
    var mostInAll = Int.max
    private(set) var connections: [Int32: Connection] = [:]
    /// Readable with a request, waiting for room in the channel back to the workers.
    private(set) var forwarding: [ListenAddress: [Int32]] = [:]

    /// The connections to poll for readability (not those waiting to be forwarded).
    var watched: [Int32] {
        let waiting = Set(forwarding.values.joined())
        return connections.keys.filter { !waiting.contains($0) }.sorted()
    }

    /// A worker handed `fd` over.
    mutating func parked(_ fd: Int32, at address: ListenAddress, idleSince: MonotonicInstant, now: MonotonicInstant) -> [Action] {
        guard let limit = limits[address] else { return [.close(fd, reason: "no pool listens on \(address) any more")] }
        connections[fd] = Connection(fd: fd, address: address, idleSince: min(idleSince, now), parked: now)
        var actions: [Action] = []
        let ofPool = connections.values.filter { $0.address == address && !(forwarding[address] ?? []).contains($0.fd) }
        if ofPool.count > limit.most {
            for oldest in ofPool.sorted(by: { $0.idleSince < $1.idleSince }).prefix(ofPool.count - limit.most) {
                connections[oldest.fd] = nil
                actions.append(.close(oldest.fd, reason: "more than listen_backlog (\(limit.most)) idle kept connections"))
            }
        }
        let idle = connections.values.filter { !(forwarding[$0.address] ?? []).contains($0.fd) }
        if idle.count > mostInAll {
            for oldest in idle.sorted(by: { $0.idleSince < $1.idleSince }).prefix(idle.count - mostInAll) {
                connections[oldest.fd] = nil
                actions.append(.close(oldest.fd, reason: "more than the master holds (\(mostInAll), half its RLIMIT_NOFILE) idle kept connections"))
            }
        }
        return actions
    }

    /// A watched connection is readable: the client sent something (`hasRequest`), or closed it.
    mutating func readable(_ fd: Int32, hasRequest: Bool) -> [Action] {
        guard let connection = connections[fd] else { return [] }
        guard hasRequest else {
            connections[fd] = nil
            return [.close(fd, reason: "the client closed it")]
        }
        forwarding[connection.address, default: []].append(fd)
        return [.forward(fd, connection.address)]
    }

    /// The shell sent it back to the workers (and closed its copy).
    mutating func forwarded(_ fd: Int32) {
        guard let connection = connections.removeValue(forKey: fd) else { return }
        forwarding[connection.address]?.removeAll { $0 == fd }
        if forwarding[connection.address]?.isEmpty == true { forwarding[connection.address] = nil }
    }

    /// The channel back to the workers of `address` has room again: what waits, in order.
    func waitingToForward(_ address: ListenAddress) -> [Action] {
        (forwarding[address] ?? []).map { .forward($0, address) }
    }

    /// Idle past its pool's keepalive_timeout: closed (nginx's own upstream keepalive_timeout
    /// should be shorter, as with any keep-alive server).
    mutating func expire(now: MonotonicInstant) -> [Action] {
        var actions: [Action] = []
        for connection in connections.values.sorted(by: { $0.fd < $1.fd }) where !(forwarding[connection.address] ?? []).contains(connection.fd) {
            guard let deadline = deadline(of: connection), now >= deadline else { continue }
            connections[connection.fd] = nil
            let timeout = limits[connection.address]?.keepaliveTimeout ?? 0
            actions.append(.close(connection.fd, reason: "idle for keepalive_timeout (\(Formatting.seconds(timeout)))"))
        }
        return actions
    }

    /// The listener of `address` was closed (its pool is gone), or the master stops.
    mutating func drop(_ address: ListenAddress?, reason: String) -> [Action] {
        let gone = connections.values.filter { address == nil || $0.address == address }.map(\.fd).sorted()
        for fd in gone { connections[fd] = nil }
        if let address { forwarding[address] = nil } else { forwarding = [:] }
        return gone.map { .close($0, reason: reason) }
    }

    /// The earliest keepalive_timeout of a parked connection.
    var nextDeadline: MonotonicInstant? {
        connections.values.filter { !(forwarding[$0.address] ?? []).contains($0.fd) }.compactMap(deadline(of:)).min()
    }

    private func deadline(of connection: Connection) -> MonotonicInstant? {
        guard let timeout = limits[connection.address]?.keepaliveTimeout, timeout > 0 else { return nil }
        return connection.idleSince.advanced(bySeconds: timeout)
    }
}
