import ForkliftConfig
import ForkliftSystem
import Glibc

/// The listening sockets, by address. The master opens them and keeps them across every
/// reload, so a new generation accepts from the very socket the old one did: no connection
/// is refused and nothing queued in the backlog is lost. A socket is closed only when no
/// pool of the live configuration listens on its address any more.
struct Listeners {
    private(set) var byAddress: [ListenAddress: Int32] = [:]
    /// Each pool listener's channel for idle kept connections (see `ParkingChannel`): it lives
    /// as long as the listener, across reloads and upgrades, like the socket.
    private(set) var parking: [ListenAddress: ParkingChannel] = [:]
    /// The sockets systemd opened (socket activation): they are systemd's, so a stop or a
    /// reload that drops them closes the descriptor but neither removes the file nor shuts
    /// the socket down (what queues there waits for the next start), and listen_owner,
    /// listen_group and listen_mode are the socket unit's (SocketUser=, SocketMode=).
    private(set) var activated: Set<ListenAddress> = []

    /// The parking channel of a pool's listener, made at its first use.
    mutating func parkingChannel(for address: ListenAddress) throws -> ParkingChannel {
        if let channel = parking[address] { return channel }
        let channel = try ParkingChannel.make()
        parking[address] = channel
        return channel
    }

    /// The descriptor for `address`, opening it if no socket is open there yet (a unix socket
    /// with `permissions`). Returns whether it was opened now.
    mutating func acquire(_ address: ListenAddress, backlog: Int32, permissions: SocketPermissions) throws -> (fd: Int32, opened: Bool) {
        if let fd = byAddress[address] { return (fd, false) }
        let fd: Int32
        switch address {
        case .unix(let path):
            fd = try Listener.unix(path: path, backlog: backlog, permissions: permissions.file)
        case .tcp(let host, let port):
            fd = try Listener.tcp(host: host, port: port, backlog: backlog)
        }
        byAddress[address] = fd
        return (fd, true)
    }

    /// Takes the sockets systemd passed as the pools' (`ActivatedSockets`); returns a log
    /// line for each, and closes those no pool takes.
    mutating func adoptActivated(_ sockets: [SocketActivation.Socket], pools: [PoolSettings]) -> [(level: LogLevel, message: String)] {
        var lines: [(LogLevel, String)] = []
        for (socket, assignment) in zip(sockets, ActivatedSockets.assign(sockets, to: pools)) {
            let passed = "descriptor \(socket.fd)" + (socket.name.map { ", FileDescriptorName=\($0)" } ?? "")
            switch assignment {
            case .success(let assignment):
                // Non-blocking like the master's own listeners: systemd passes them blocking, and
                // a worker that lost the race for a connection would block in accept() there,
                // deaf to TERM (read from a signalfd) and to its generation's retirement.
                do {
                    try setNonBlocking(socket.fd)
                } catch {
                    closeDescriptor(socket.fd)
                    lines.append((.error, "the socket systemd passed as \(passed) is closed: \(error)"))
                    continue
                }
                byAddress[assignment.address] = socket.fd
                activated.insert(assignment.address)
                let bound = socket.address.map(\.description) ?? "?"
                let instead = bound == assignment.address.description ? "" : ", in place of its listen \(assignment.address)"
                lines.append((.notice, "pool \(assignment.pool) listening on \(bound): the socket systemd passed (\(passed)\(instead))"))
            case .failure(let unassigned):
                closeDescriptor(socket.fd)
                lines.append((.warning, "the socket systemd passed as \(passed)\(socket.address.map { " on \($0)" } ?? "") is closed: \(unassigned.reason)"))
            }
        }
        return lines
    }

    /// Takes over the sockets and parking channels an upgrading master handed over (by address text).
    mutating func adopt(_ inherited: [String: Int32], parking inheritedParking: [String: ParkingChannel] = [:], activated inheritedActivated: [String] = []) {
        activated = Set(inheritedActivated.compactMap { ListenAddress(parsing: $0) })
        for (text, fd) in inherited {
            guard let address = ListenAddress(parsing: text) else { continue }
            try? setCloseOnExec(fd)
            byAddress[address] = fd
        }
        for (text, channel) in inheritedParking {
            guard let address = ListenAddress(parsing: text) else { continue }
            for fd in [channel.masterEnd, channel.workersEnd] {
                try? setCloseOnExec(fd)
                try? setNonBlocking(fd)
            }
            parking[address] = channel
        }
    }

    /// A full stop: new clients are refused at once (the unix socket files go away, TCP
    /// listeners are shut down) instead of waiting in the backlog for workers that are
    /// leaving. Connections already accepted finish normally.
    func refuseNewConnections() {
        for (address, fd) in byAddress where !activated.contains(address) {
            switch address {
            case .unix(let path): unlink(path)
            case .tcp: _ = shutdown(fd, Int32(SHUT_RD))
            }
        }
    }

    /// A reload that changed a pool's listen_owner, listen_group or listen_mode: its open unix
    /// sockets get them (the socket stays, and with it the connections in its backlog).
    /// Returns a line per socket that changed, or that could not be changed.
    func applyPermissions(of pools: [PoolSettings]) -> [(level: LogLevel, message: String)] {
        var lines: [(LogLevel, String)] = []
        for pool in pools {
            for address in [pool.listen] + (pool.statusListen.map { [$0] } ?? []) {
                guard case .unix(let path) = address, byAddress[address] != nil, !activated.contains(address) else { continue }
                let wanted = pool.socketPermissions.file
                do {
                    if let before = try Listener.apply(wanted, to: path) {
                        lines.append((.notice, "pool \(pool.name): \(path) is now \(wanted) (listen_owner, listen_group, listen_mode; it was \(before))"))
                    }
                } catch {
                    lines.append((.error, "pool \(pool.name): cannot give \(path) \(wanted): \(error)"))
                }
            }
        }
        return lines
    }

    /// Closes every socket but leaves the files: another master serves them now.
    mutating func closeDescriptors() {
        for fd in byAddress.values { closeDescriptor(fd) }
        byAddress = [:]
        for channel in parking.values { channel.close() }
        parking = [:]
    }

    /// What a listener is bound to, with the real port when port 0 was asked for.
    func describe(_ address: ListenAddress) -> String {
        if case .tcp(let host, 0) = address, let fd = byAddress[address], let port = Listener.boundPort(fd) {
            return ListenAddress.tcp(host: host, port: port).description
        }
        return address.description
    }

    func fd(for address: ListenAddress) -> Int32? { byAddress[address] }

    /// Closes every socket whose address is not in `keep`, removing unix socket files.
    /// Workers of draining generations keep their own copies, so they finish undisturbed.
    mutating func close(allBut keep: Set<ListenAddress>) {
        for (address, fd) in byAddress where !keep.contains(address) {
            closeDescriptor(fd)
            if case .unix(let path) = address, !activated.contains(address) { unlink(path) }
            activated.remove(address)
            byAddress[address] = nil
            parking.removeValue(forKey: address)?.close()
        }
    }

    /// Closes the sockets in `addresses` (opened for a reload that was rolled back).
    mutating func close(_ addresses: [ListenAddress]) {
        let keep = Set(byAddress.keys).subtracting(addresses)
        close(allBut: keep)
    }
}
