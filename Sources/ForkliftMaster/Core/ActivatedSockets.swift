import ForkliftConfig
import ForkliftSystem

/// Which pool takes each socket systemd passed (socket activation), as a pure rule: a socket
/// named like a pool (`FileDescriptorName=www`) is that pool's `listen`, whatever its
/// address; any other is the `listen` or `status_listen` bound to the same address. A socket
/// no pool wants is closed, and said so.
enum ActivatedSockets {
    struct Assignment: Equatable {
        /// The configured address the socket serves as, and the pool's name.
        var address: ListenAddress
        var pool: String
    }

    /// For each socket (by its index in `sockets`), its assignment, or why it has none.
    static func assign(_ sockets: [SocketActivation.Socket], to pools: [PoolSettings]) -> [Result<Assignment, Unassigned>] {
        var taken: Set<ListenAddress> = []
        return sockets.map { socket in
            guard let bound = socket.address else { return .failure(Unassigned(reason: socket.problem ?? "unusable")) }
            // The address first: FileDescriptorName= names every socket of a unit alike, so a
            // unit with a pool's listen and status_listen gives both the pool's name.
            let byAddress = pools.lazy.compactMap { pool -> Assignment? in
                for address in [pool.listen] + (pool.statusListen.map { [$0] } ?? []) where matches(address, bound) {
                    return Assignment(address: address, pool: pool.name)
                }
                return nil
            }.first
            // By name, the pool's listen, if of the same kind: a TCP socket in place of a unix
            // listen would escape listen_allowed_clients (which a unix listen cannot have).
            let namedPool = socket.name.flatMap { name in pools.first { $0.name == name } }
            if byAddress == nil, let pool = namedPool, sameKind(pool.listen, bound) == false {
                return .failure(Unassigned(reason: "it is named like pool \(pool.name), whose listen \(pool.listen) is \(isUnix(pool.listen) ? "a unix socket" : "TCP"), and it is not"))
            }
            let byName = namedPool.map { Assignment(address: $0.listen, pool: $0.name) }
            guard let assignment = byAddress ?? byName else {
                return .failure(Unassigned(reason: "no pool listens on \(bound)" + (socket.name.map { " or is named \($0)" } ?? "")))
            }
            guard taken.insert(assignment.address).inserted else {
                return .failure(Unassigned(reason: "pool \(assignment.pool) already has a socket from systemd for \(assignment.address)"))
            }
            return .success(assignment)
        }
    }

    struct Unassigned: Error, Equatable {
        let reason: String
    }

    static func matches(_ address: ListenAddress, _ bound: SocketActivation.BoundAddress) -> Bool {
        switch (address, bound) {
        case (.unix(let path), .unix(let other)): path == other
        case (.tcp(let host, let port), .inet(let other, let otherPort)):
            // A port alone ("9000", host "*") is every IPv4 address.
            port == otherPort && IPAddress.bytes(host == "*" ? "0.0.0.0" : host).map { IPAddress.bytes(other) == $0 } == true
        default: false
        }
    }

    static func isUnix(_ address: ListenAddress) -> Bool {
        if case .unix = address { return true }
        return false
    }

    static func sameKind(_ address: ListenAddress, _ bound: SocketActivation.BoundAddress) -> Bool {
        if case .unix = bound { return isUnix(address) }
        return !isUnix(address)
    }
}
