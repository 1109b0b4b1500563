import ForkliftConfig
import ForkliftSystem
import Glibc

/// The shell around `ParkedConnections`: it receives the idle kept connections workers park
/// on each pool's channel, polls them, and sends one back to the pool's workers when its
/// client sends a request on it.
extension Master {
    /// What the master's one poll waits for on behalf of parked connections.
    func parkingPollRequests() -> [PollRequest] {
        guard !parkingHandedOver else { return [] }
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
        guard !parkingHandedOver else { return }
        parked.mostInAll = Self.mostParked
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
            } catch let error as SystemError where error.errno == EPROTO || error.errno == EMFILE || error.errno == ENFILE {
                // A message that was not a connection (a plugin can write to the channel), or
                // one the kernel could not give a descriptor to: the next may be fine.
                warnAboutParking(error.errno == EPROTO ? "a message on the parking channel of \(address) was not a connection; dropped"
                    : "a parked connection of \(address) was lost: the master is out of descriptors (RLIMIT_NOFILE)")
                continue
            } catch {
                warnAboutParking("parking channel of \(address): \(error)")
                return
            }
            guard let received else { return }
            guard !refusingParked, ParkingChannel.isConnectedStream(received.connection) else {
                Self.closeQuickly(received.connection) // stopping (no worker will serve it), or not a connection at all
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
                    Self.closeQuickly(fd)
                } catch let error as SystemError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                    continue // the workers' queue is full: again when the channel has room
                } catch {
                    warnAboutParking("cannot send a parked connection back to the workers of \(address) (\(error)); closing it")
                    parked.forwarded(fd)
                    Self.closeQuickly(fd)
                }
            case .close(let fd, let reason):
                if reason.hasPrefix("more than") { warnAboutParking("closing a parked connection: \(reason)") }
                else { log.debug("closing a parked connection: \(reason)") }
                Self.closeQuickly(fd)
            }
        }
    }

    /// At most one warning about parking every 10 s: a client or plugin must not flood the log.
    private func warnAboutParking(_ message: String) {
        let now = MonotonicInstant.now()
        if let last = lastParkingWarning, last.seconds(until: now) < 10 { return }
        lastParkingWarning = now
        log.warning("\(message)")
    }

    /// close() without lingering: a socket a worker sent with SO_LINGER set and unsent data
    /// would otherwise block the master in close() for the linger time.
    static func closeQuickly(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 0, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        closeDescriptor(fd)
    }

    /// A stop: parked connections are closed, and so is any parked later.
    func closeParkedConnections() {
        refusingParked = true
        performParking(parked.drop(nil, reason: "forklift is stopping"))
    }

    /// An upgrade's go: the new master reads the parking channels from now on, and takes this
    /// one's parked connections. They are sent over the workers' end, which delivers to the
    /// master end's queue, where the new master finds them as if a worker had parked them.
    /// A new binary that does not take them over gets them closed, as before parking existed.
    func handParkedConnectionsOver() {
        guard upgradeTakesParking else {
            log.warning("upgrade: the new master does not take parked connections over; closing \(parked.connections.count)")
            closeParkedConnections()
            return
        }
        parkingHandedOver = true
        let giveUpAt = MonotonicInstant.now().advanced(bySeconds: Self.handoverWait)
        for fd in parked.connections.keys.sorted() {
            guard let connection = parked.connections[fd], let channel = listeners.parking[connection.address] else { continue }
            var sent = false
            while !sent {
                do {
                    try ParkingChannel.send(fd, idleSince: connection.idleSince, over: channel.workersEnd)
                    sent = true
                } catch let error as SystemError where error.errno == EAGAIN && MonotonicInstant.now() < giveUpAt {
                    // The new master reads its queue: wait for room, a bounded time.
                    _ = try? waitForEvents([PollRequest(fd: channel.workersEnd, writable: true)], timeoutSeconds: 0.05)
                } catch {
                    log.warning("upgrade: cannot hand a parked connection over (\(error)); closing it")
                    break
                }
            }
            parked.forwarded(fd)
            Self.closeQuickly(fd)
        }
        performParking(parked.drop(nil, reason: "handed over"))
    }

    /// Parked connections the master holds at most, over all pools: half its descriptor limit
    /// (RLIMIT_NOFILE), the rest for sockets, pipes, boards and control clients.
    static let mostParked: Int = {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 512 }
        return Int(max(16, min(limit.rlim_cur, 1 << 20) / 2))
    }()

    /// How long a handover may wait for the new master to read its queue.
    static let handoverWait = 1.0

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
