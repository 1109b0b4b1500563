import ForkliftConfig
import ForkliftSystem
import Glibc

/// The shell around `ParkedConnections`: it receives the idle kept connections workers park
/// on each pool's channel, polls them, and sends one back to the pool's workers when its
/// client sends a request on it.
extension Master {
    /// What the master's one poll waits for on behalf of parked connections.
    func parkingPollRequests() -> [PollRequest] {
        var requests: [PollRequest] = []
        for (address, channel) in listeners.parking {
            let waiting = !parked.waitingToForward(address).isEmpty
            requests.append(PollRequest(fd: channel.masterEnd, readable: true, writable: waiting))
        }
        parkedPolled = parked.watched
        requests += parkedPolled.map { PollRequest(fd: $0, readable: true) }
        return requests
    }

    /// Reads what the poll found: connections parked, parked connections readable, channels
    /// with room again; then the keepalive deadlines.
    func serviceParking(_ ready: [Int32: PollResult]) {
        parked.limits = Dictionary(configuration.pools.map { ($0.listen, ParkedConnections.Limits(keepaliveTimeout: $0.keepaliveTimeout, most: Int($0.listenBacklog))) },
                                   uniquingKeysWith: { first, _ in first })
        let now = MonotonicInstant.now()
        for (address, channel) in listeners.parking.sorted(by: { $0.value.masterEnd < $1.value.masterEnd }) {
            guard let result = ready[channel.masterEnd] else { continue }
            if result.writable { performParking(parked.waitingToForward(address)) }
            if result.readable || result.closed { receiveParked(on: channel, at: address, now: now) }
        }
        // Only what was polled as a parked connection: a descriptor number closed and reused
        // since (a host's report pipe at its end, then a connection just parked) says nothing
        // of the connection.
        for fd in parkedPolled where ready[fd] != nil && parked.connections[fd] != nil {
            switch Self.peek(fd) {
            case .request: performParking(parked.readable(fd, hasRequest: true))
            case .closed: performParking(parked.readable(fd, hasRequest: false))
            case .nothing: continue
            }
        }
        parkedPolled = []
        performParking(parked.expire(now: .now()))
    }

    /// Everything queued on a channel (a leaving generation may park many at once; at most
    /// 256 per wake, so the rest of the loop is not held up).
    private func receiveParked(on channel: ParkingChannel, at address: ListenAddress, now: MonotonicInstant) {
        for _ in 0..<256 {
            let received: (connection: Int32, idleSince: MonotonicInstant)?
            do {
                received = try ParkingChannel.receive(from: channel.masterEnd)
            } catch {
                log.warning("parking channel of \(address): \(error)")
                continue
            }
            guard let received else { return }
            if refusingParked {
                closeDescriptor(received.connection) // stopping: no worker will serve it
                continue
            }
            performParking(parked.parked(received.connection, at: address, idleSince: received.idleSince, now: now))
        }
    }

    func performParking(_ actions: [ParkedConnections.Action]) {
        for action in actions {
            switch action {
            case .forward(let fd, let address):
                guard let channel = listeners.parking[address] else {
                    performParking(parked.drop(address, reason: "its pool's channel is closed"))
                    continue
                }
                do {
                    try ParkingChannel.send(fd, idleSince: .now(), over: channel.masterEnd)
                    parked.forwarded(fd)
                    closeDescriptor(fd)
                } catch let error as SystemError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                    continue // the workers' queue is full: again when the channel has room
                } catch {
                    log.warning("cannot send a parked connection back to the workers of \(address) (\(error)); closing it")
                    parked.forwarded(fd)
                    closeDescriptor(fd)
                }
            case .close(let fd, let reason):
                log.debug("closing a parked connection: \(reason)")
                closeDescriptor(fd)
            }
        }
    }

    /// A stop: parked connections are closed, and so is any parked later.
    func closeParkedConnections() {
        refusingParked = true
        performParking(parked.drop(nil, reason: "forklift is stopping"))
    }

    /// An upgrade handed everything over: the parked connections go to the workers' queue,
    /// which the new master's workers share, rather than being closed under a client.
    func handParkedConnectionsOver() {
        for fd in parked.connections.keys.sorted() {
            guard let connection = parked.connections[fd], let channel = listeners.parking[connection.address] else { continue }
            if (try? ParkingChannel.send(fd, idleSince: connection.idleSince, over: channel.masterEnd)) == nil {
                log.warning("cannot hand a parked connection over; closing it")
            }
            parked.forwarded(fd)
            closeDescriptor(fd)
        }
        performParking(parked.drop(nil, reason: "handed over"))
    }

    /// After listeners closed (their pools are gone): their parked connections go too.
    func dropParkedWithoutChannel() {
        let orphaned = Set(parked.connections.values.map(\.address)).filter { listeners.parking[$0] == nil }
        for address in orphaned.sorted(by: { $0.description < $1.description }) {
            performParking(parked.drop(address, reason: "no pool listens on \(address) any more"))
        }
    }

    enum Peek { case request, closed, nothing }

    /// Whether a readable connection has bytes (a request), its end, or nothing after all.
    static func peek(_ fd: Int32) -> Peek {
        var byte: UInt8 = 0
        let count = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if count > 0 { return .request }
        if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return .nothing }
        return .closed
    }
}
