import CFastCGI
import CForkliftSys
import ForkliftConfig
import ForkliftLogging
import ForkliftSystem
import Glibc
import Logging

/// The request loop proper, separated so that `Worker.run` reads as setup, loop, teardown.
///
/// The worker accepts each connection itself (the pool's read and write timeouts apply to
/// every read and write on it: `ConnectionTimeouts`); then, in its own poll, it reads the request's records up to the end of its params
/// until they have arrived and are well-formed (`RecordScanner`), for at most
/// `request_read_timeout`. Only then does libfcgi get the open descriptor (`FCGX_Accept_r`
/// skips its own accept when the request already has one), and it reads those records from
/// what the worker read (`RequestStart`): its blocking reads of them never wait on a client.
/// A client that says nothing, stops half-way or sends nonsense costs at most the read timeout
/// and is logged; the worker goes on.
///
/// A connection the client keeps open (FCGI_KEEP_CONN) stays with the worker between
/// requests, for at most `keepalive_timeout` of idleness, and is given up at once when a new
/// client waits and no worker is listening: kept connections can never starve the pool. A
/// kept connection given up for a client, or by a worker that must leave (stop, retire,
/// recycle), is parked with the master, not closed (see `ParkingChannel`): a web server that
/// picks it for its next request at that moment would fail that request. The master sends it
/// back when its next request comes, and a free worker takes it as from the listener.
struct AcceptLoop {
    let launch: WorkerLaunch
    let signals: SignalDescriptor
    var waiter: ConnectionWaiter
    var dispatcher: Dispatcher
    private let earlyFinish: EarlyFinish
    let request: UnsafeMutablePointer<FCGX_Request>
    let scanner: RecordScanner
    /// request_read_timeout and request_write_timeout, on every connection it reads.
    let timeouts: ConnectionTimeouts
    /// Where a body left unread is drained to.
    private let drainBuffer: UnsafeMutableRawBufferPointer
    private(set) var served = 0
    /// Passes of the loop until the next host-gone check (`reasonToLeave`); the first is at once.
    private var parentCheckCountdown = 0
    private var stopping = false
    private(set) var acceptFailed = false
    /// The connection the client keeps open, between requests. One that is no longer kept
    /// leaves the kept wait's epoll set (closed or given away, its number may come back as
    /// another connection's).
    private var kept: Int32? {
        didSet { if let old = oldValue, old != kept { waiter.keptSet.forget(old) } }
    }
    /// The request's empty STDIN came with its params (`RecordScanner`): it has no body.
    private var stdinArrived = false
    private var keptIdleSince = MonotonicInstant.now()
    /// A listener readable while another worker listens: it will take the connection.
    private var listenerQuietUntil: MonotonicInstant?
    private var refusals = RefusalLog()
    private var refusedClients = RefusedClients()
    /// It gave its kept connection up for a new client: the claim is released once it listens.
    private var yielding = false
    /// Quiet periods in a row with a client waiting (see `nextOnKept`).
    private var quietRounds = 0
    /// A standby that took a place says "serving PID" to its host before its first wait.
    private var announcesServing: Bool

    /// A stopping worker serves at most this many connections left in the parking queue.
    static let stopDrainLimit = 64

    /// After a stop, a request still being sent gets this long at most.
    static let stopReadGrace = 1.0
    static let listenerQuietPeriod = 0.005

    init(launch: WorkerLaunch, signals: SignalDescriptor, waiter: ConnectionWaiter, announcesServing: Bool = false) {
        self.launch = launch
        self.announcesServing = announcesServing
        self.signals = signals
        self.waiter = waiter
        request = .allocate(capacity: 1)
        request.initialize(to: FCGX_Request())
        // No listening socket for libfcgi: when a connection's first records fail, its
        // FCGX_Accept_r would accept the next connection itself, without our timeouts.
        FCGX_InitRequest(request, -1, 0)
        let maxParams = launch.pool.maxParamsSize
        scanner = RecordScanner(maxParamsSize: maxParams)
        // The params, their records' headers and padding, BEGIN_REQUEST, a management record.
        RequestStart.prepare(capacity: maxParams + 4096 + (maxParams / 65535 + 2) * 264)
        timeouts = ConnectionTimeouts(read: launch.pool.requestReadTimeout, write: launch.pool.requestWriteTimeout)
        drainBuffer = .allocate(byteCount: 65536, alignment: 8)
        earlyFinish = EarlyFinish(request: request, parkFD: launch.parkFD, drainBuffer: drainBuffer, keptSet: waiter.keptSet)
        dispatcher = Dispatcher(plugins: launch.plugins, pool: launch.pool, generation: launch.generation, board: launch.board,
                                slot: launch.slot, counters: launch.counters, earlyFinish: earlyFinish)
    }

    /// Serves until told to stop, retired, or orphaned; returns why it stopped.
    mutating func run() -> String {
        launch.slot.set(.idle)
        while true {
            if let reason = reasonToLeave() {
                if stopping && !launch.board.isRetired {
                    // A stop (a retired generation's TERM is a reload's: it parks, for the new
                    // one): nothing is parked any more (the master closes what it holds), so
                    // what a client already sent is served, here and on connections the master
                    // sent back just before the stop.
                    closeKept()
                    var drained = 0
                    while drained < Self.stopDrainLimit, adoptParked() {
                        drained += 1
                        closeKept()
                    }
                } else {
                    giveUpKept()
                }
                return reason
            }
            let next: Int32?
            if let connection = kept { next = nextOnKept(connection) } else { next = acceptNext() }
            guard let connection = next else { continue }
            serve(connection)
        }
    }

    /// Connections of a unix socket are closed without libfcgi's lingering (see `serve`).
    private var closesPlainly: Bool {
        if case .unix = launch.pool.listen { return true }
        return false
    }

    /// Whether the client has sent the end of the request's body: read, or seen right after
    /// the params. A request that declared no body and whose empty stdin has not come yet
    /// waits for it here (within request_read_timeout, as for the rest of the request), as
    /// php-fpm's close does: closed before it came, the client's write of it would fail
    /// (cgi-fcgi exits with EPIPE) or, on TCP, reset the connection under the response. False
    /// for a body the handler left unread (a 413, an early answer): libfcgi's lingering close.
    private func bodyHasEnded() -> Bool {
        if FCGX_HasSeenEOF(request.pointee.in) != 0 || stdinArrived { return true }
        // No String per request: the value's bytes, "" or "0" for no body.
        let declared = FCGX_GetParam("CONTENT_LENGTH", request.pointee.envp)
        let noBody = declared.map { $0[0] == 0 || ($0[0] == CChar(UInt8(ascii: "0")) && $0[1] == 0) } ?? true
        guard noBody else { return false }
        // The response goes out first (all but its END_REQUEST); the client may be slow to end
        // its stdin, not to read.
        FCGX_FFlush(request.pointee.out)
        return drainBody() && FCGX_HasSeenEOF(request.pointee.in) != 0
    }

    /// Whether neither the worker nor the socket holds anything more of the client's.
    private func nothingMoreToRead(_ connection: Int32) -> Bool {
        guard RequestStart.pending(connection) == 0 else { return false }
        var byte: UInt8 = 0
        return recv(connection, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }

    /// Why the worker must leave now, between requests, if it must.
    /// It served its max_requests (plus jitter).
    var reachedRequestLimit: Bool { launch.requestLimit > 0 && served >= launch.requestLimit }

    private mutating func reasonToLeave() -> String? {
        if acceptFailed { return "accept failed" }
        if stopping { return "stop requested" }
        if launch.board.isRetired { return "its generation was retired" }
        if reachedRequestLimit { return "served its \(served) requests (max_requests)" }
        // The host's death sends TERM (PR_SET_PDEATHSIG, set at the worker's start), so this
        // is only the backstop for a plugin that changed credentials, which clears it: checked
        // every 256 passes of the loop (requests or wakes) rather than with a system call per
        // request.
        parentCheckCountdown -= 1
        if parentCheckCountdown <= 0 {
            parentCheckCountdown = 256
            if getppid() != launch.hostPID { return "its host is gone" }
        }
        return nil
    }

    // MARK: - Connections

    /// Waits on the listener and accepts a connection; nil when another worker took it, or a
    /// signal came.
    private mutating func acceptNext() -> Int32? {
        // Flagged as waiting from here until accept() returned; see GenerationBoard.
        guard launch.slot.enterWaiting(retiredBy: launch.board) else { return nil } // retired: the loop leaves
        defer { launch.slot.leaveWaiting() }
        if yielding {
            // Listening now: other kept workers see it, and need not give way.
            yielding = false
            launch.board.releaseYield()
        }
        if announcesServing {
            // A standby that took a place waits for connections now: its host forks the next
            // standby then, not earlier, so that the fork does not hold this one up.
            announcesServing = false
            launch.tellHost("serving")
        }
        let events: ConnectionWaiter.Events
        do {
            events = try waiter.waitForConnection()
        } catch {
            ForkliftLogging.logger.error("worker wait failed: \(error)")
            acceptFailed = true
            return nil
        }
        if events.contains(.signal) { handleSignals() }
        // Retired: a newer generation takes the connection once its gate opens (it finds it
        // still queued). Otherwise take it even when a stop just arrived: the kernel woke this
        // worker alone (EPOLLEXCLUSIVE), nobody else would.
        guard !launch.board.isRetired else { return nil }
        // A parked connection with its client's next request on it has waited longest.
        if events.contains(.parkedReadable), adoptParked() { return nil }
        guard events.contains(.listenerReadable) else { return nil }
        // Close-on-exec at once (accept4): one system call, not three.
        let connection = forklift_accept_cloexec(launch.listenFD)
        guard connection >= 0 else {
            switch errno {
            case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED:
                return nil // another worker took it
            case EINVAL:
                stopping = true // the master shut the listener down: forklift is stopping
                return nil
            default:
                // EMFILE and the like fail again at once while the listener stays readable:
                // leave, and let the host start a fresh worker.
                ForkliftLogging.logger.error("accept failed (\(String(cString: strerror(errno)))); this worker leaves")
                acceptFailed = true
                return nil
            }
        }
        if let allowed = launch.pool.allowedClients, !admits(connection, allowed) { return nil }
        RequestStart.begin(connection)
        timeouts.apply(to: connection)
        return connection
    }

    /// listen_allowed_clients: a connection from another address is closed at once, before a
    /// byte of it is read (a connection parked with the master and sent back was admitted
    /// when it was first accepted).
    private mutating func admits(_ connection: Int32, _ allowed: AllowedClients) -> Bool {
        guard let peer = IPAddress.peer(of: connection) else { return true } // not TCP: the configuration refuses that
        if allowed.allows(peer.bytes) { return true }
        closeDescriptor(connection)
        let address = IPAddress.text(IPAddress.unmapped(peer.bytes)) ?? "an unknown address"
        if let line = refusedClients.refused(address, now: .now()) { ForkliftLogging.logger.warning("\(line)") }
        return false
    }

    /// Takes a connection the master sent back (its client sent a request on it) as this
    /// worker's kept connection; false when another worker took it first.
    private mutating func adoptParked() -> Bool {
        let parked: (connection: Int32, idleSince: MonotonicInstant)?
        do {
            parked = try ParkingChannel.receive(from: launch.parkFD)
        } catch {
            ForkliftLogging.logger.error("cannot take a parked connection: \(error)")
            return false
        }
        guard let parked else { return false }
        RequestStart.begin(parked.connection)
        // This generation's timeouts (a reload may have changed them).
        timeouts.apply(to: parked.connection)
        kept = parked.connection
        keptIdleSince = parked.idleSince
        return true
    }

    /// Waits for the next request on the kept connection; nil when the worker gave the
    /// connection up (idle too long, a new client waiting, leaving) or a signal came.
    private mutating func nextOnKept(_ connection: Int32) -> Int32? {
        // The client sent its next request with the last one's end: it is already read.
        if RequestStart.pending(connection) > 0 { return connection }
        let now = MonotonicInstant.now()
        let keepalive = launch.pool.keepaliveTimeout
        let idleLeft: Double? = keepalive > 0 ? max(0, keepalive - keptIdleSince.seconds(until: now)) : nil
        let quietLeft: Double? = listenerQuietUntil.map { now.seconds(until: $0) }.flatMap { $0 > 0 ? $0 : nil }
        // The sooner of the two, without an array per wait (this is on every kept request's path).
        let timeout = idleLeft.map { idle in quietLeft.map { min(idle, $0) } ?? idle } ?? quietLeft
        // A quiet period is over: a round counts only if a client is still waiting now (a new
        // client some other worker took meanwhile starts again from one).
        if quietLeft == nil && quietRounds > 0 && !waiter.clientWaiting() { quietRounds = 0 }
        // Flagged as waiting (on a kept connection): a switch waits for it to close or serve.
        guard launch.slot.enterWaiting(retiredBy: launch.board, kept: true) else { return nil }
        defer { launch.slot.leaveWaiting() }
        let events: ConnectionWaiter.Events
        do {
            events = try waiter.waitOnKept(connection, watchingListener: quietLeft == nil, timeout: timeout)
        } catch {
            closeKept()
            return nil
        }
        if events.contains(.signal) { handleSignals() }
        if events.contains(.connectionReadable) {
            quietRounds = 0
            return connection
        }
        if events.contains(.timedOut), keepalive > 0, keptIdleSince.seconds(until: .now()) >= keepalive {
            // Closed, not parked: idle this long it would be closed by the master as well.
            // (nginx's upstream keepalive_timeout should be the shorter, as with any server.)
            ForkliftLogging.logger.debug("closing a kept connection idle for \(Formatting.seconds(keepalive)) (keepalive_timeout)")
            closeKept()
            return nil
        }
        if events.contains(.listenerReadable) || events.contains(.parkedReadable) {
            // A client waits. This idle connection makes way (parked with the master) when
            // nobody is listening and no more workers may be forked; or when the client is
            // still waiting after quiet periods: 8 (40 ms) while another worker listens (the
            // kernel woke this worker's epoll alone), 20 (100 ms) while the host may fork one
            // (a fork takes a few ms, more on a loaded machine). Otherwise another worker
            // takes it.
            quietRounds += 1
            let nobodyListens = launch.board.listeningWorkers == 0
            let makesWay = (nobodyListens && launch.board.hostAtCeiling) || (!nobodyListens && quietRounds >= 8) || quietRounds >= 20
            if makesWay && launch.board.claimYield() {
                ForkliftLogging.logger.debug("giving up an idle kept connection: a new client waits and no worker is free")
                giveUpKept()
                yielding = true
                quietRounds = 0
            } else {
                listenerQuietUntil = MonotonicInstant.now().advanced(bySeconds: Self.listenerQuietPeriod)
            }
        }
        return nil
    }

    /// Between requests: the kept connection goes to the master to wait for its client's next
    /// request (closed only if it cannot be parked).
    private mutating func giveUpKept() {
        // What the client already sent, and the worker read, is served first: the master gets
        // the connection, not what was read of it.
        var rounds = 0
        while let connection = kept, rounds < 16, RequestStart.pending(connection) > 0 {
            rounds += 1
            serve(connection)
        }
        guard let connection = kept else { return }
        waiter.keptSet.forget(connection) // before the master has a copy
        guard launch.parkFD >= 0, EarlyFinish.park(connection, idleSince: keptIdleSince, over: launch.parkFD) else { return closeKept() }
        kept = nil
        request.pointee.ipcFd = -1
        request.pointee.keepConnection = 0
        closeDescriptor(connection) // the master has its own copy now
        launch.slot.set(.idle)
    }

    /// Between requests: what the client already sent on the connection is served first (a
    /// few requests at most), so that closing it drops nothing.
    private mutating func closeKept() {
        var rounds = 0
        while let connection = kept, rounds < 16, Self.hasPendingBytes(connection) {
            rounds += 1
            serve(connection)
        }
        guard let connection = kept else { return }
        kept = nil
        request.pointee.ipcFd = -1
        request.pointee.keepConnection = 0
        closeDescriptor(connection)
        launch.slot.set(.idle)
    }

    // MARK: - One request

    private mutating func serve(_ connection: Int32) {
        let started = MonotonicInstant.now()
        launch.slot.markReading(now: started)
        switch readRequestStart(connection, started: started) {
        case .ready:
            break
        case .closed:
            // The client closed (a kept connection's end, or one that never sent anything).
            dropConnection(connection)
            return
        case .refused(let kind, let reason):
            refusals.note(kind, reason, peer: Self.peer(connection))
            dropConnection(connection)
            return
        }
        // A stop signal waits until the response is complete: the stop signals are blocked
        // for good and read from a signalfd between requests (`SignalDescriptor`), so they
        // cannot cut a plugin's sleep, poll or read short with EINTR.
        // libfcgi finishes "the previous request" first, closing the descriptor unless the
        // connection is kept: say it is. Its BEGIN_REQUEST says what the client wants.
        request.pointee.ipcFd = connection
        request.pointee.keepConnection = 1
        guard FCGX_Accept_r(request) >= 0 else {
            // The records were complete and checked: only a failing read gets here. libfcgi
            // closed the connection.
            kept = nil
            request.pointee.ipcFd = -1
            launch.slot.set(.idle)
            return
        }
        earlyFinish.reset()
        let outcome = dispatcher.serve(request, started: started) // through to .finishing
        if earlyFinish.finished {
            // The connection was given away when the handler finished its response.
        } else if outcome == .abort {
            // Part of the response went out and the rest never will: the client must not take
            // it for complete. No END_REQUEST; a TCP client gets a reset.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(connection, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            shutdown(connection, Int32(SHUT_RDWR))
            request.pointee.keepConnection = 0
        } else if request.pointee.keepConnection != 0 && !drainBody() {
            request.pointee.keepConnection = 0 // too much left unread to keep the connection in step
        } else if request.pointee.keepConnection == 0 && bodyHasEnded() && closesPlainly && nothingMoreToRead(connection) {
            // libfcgi's close lingers (shutdown, poll, read, close) so that a client that still
            // sends gets no error that could cost it the response it has not read yet: a TCP
            // reset, or on a unix socket EPIPE and ECONNRESET once unread data was left behind.
            // When nothing is left unread and nothing more will come (`bodyHasEnded`,
            // `nothingMoreToRead`), a unix socket's client reads all we wrote, then the end: a
            // "detached" request is closed with close() alone, two system calls fewer. A body
            // left unread (a 413, an early answer) keeps the lingering close.
            request.pointee.detached = 1
        }
        FCGX_Finish_r(request)
        // libfcgi keeps the descriptor open when the client asked to keep the connection.
        kept = request.pointee.ipcFd >= 0 ? request.pointee.ipcFd : nil
        if kept == nil { RequestStart.release() }
        keptIdleSince = .now()
        dispatcher.finished(kept: kept != nil)
        served += 1
    }

    private func drainBody() -> Bool { EarlyFinish.drainBody(request.pointee.in, drainBuffer) }

    enum Start { case ready, closed, refused(RefusalLog.Kind, String) }

    /// Reads until the request's records up to the end of its params have arrived and are
    /// well-formed; answers management records itself on the way. What a kept connection's
    /// client sent with its previous request is looked at first.
    private mutating func readRequestStart(_ connection: Int32, started: MonotonicInstant) -> Start {
        var deadline = started.advanced(bySeconds: launch.pool.requestReadTimeout)
        var readNext = RequestStart.pending(connection) == 0
        var heldBeforeWait: Int?
        while true {
            if readNext {
                let count = RequestStart.receive(connection)
                // The client closed: between requests, or in the middle of one.
                if count == 0 { return .closed }
                if count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ENOBUFS { return .closed }
                // Only peeking, the socket stays readable while it holds what was peeked at:
                // nothing new came, so a short pause rather than a spin until the rest comes.
                if let held = heldBeforeWait, !RequestStart.consumes, count == held { usleep(1000) }
            }
            readNext = true
            heldBeforeWait = nil
            let bytes = RequestStart.bytes
            switch scanner.scan(bytes) {
            case .complete(let stdinEnded):
                stdinArrived = stdinEnded
                return .ready
            case .management(let record, let length):
                guard RequestStart.consume(length, of: connection) else { return .closed }
                answer(record, on: connection)
                readNext = RequestStart.pending(connection) == 0
                continue
            case .unknownRole(let requestID, let role):
                _ = ConnectionTimeouts.send(ManagementAnswers.unknownRole(requestID: requestID), on: connection)
                return .refused(.protocolError, "role \(role) is not one this server plays (answered FCGI_UNKNOWN_ROLE)")
            case .tooLarge(let limit):
                return .refused(.tooLarge, "its params exceed max_params_size (\(limit) bytes)")
            case .malformed(let reason):
                return .refused(.protocolError, reason)
            case .incomplete:
                if RequestStart.isFull {
                    return .refused(.tooLarge, "its records up to the end of its params exceed max_params_size (\(launch.pool.maxParamsSize) bytes)")
                }
            }
            let now = MonotonicInstant.now()
            guard now < deadline else {
                return .refused(.readTimeout, "it sent \(bytes.count) bytes and not the rest of its request's params within request_read_timeout (\(Formatting.seconds(launch.pool.requestReadTimeout)))")
            }
            let ready = (try? waitReadable([connection, signals.fileDescriptor], timeoutSeconds: now.seconds(until: deadline))) ?? []
            if ready.contains(connection) { heldBeforeWait = bytes.count }
            if ready.contains(signals.fileDescriptor) {
                handleSignals()
                // Stopping: a request that is really on its way arrives within the grace.
                if stopping { deadline = min(deadline, MonotonicInstant.now().advanced(bySeconds: Self.stopReadGrace)) }
            }
        }
    }

    /// Writes the answer to a management record (read and consumed).
    private func answer(_ record: RecordScanner.ManagementRecord, on connection: Int32) {
        switch record {
        case .getValues(let names): _ = ConnectionTimeouts.send(ManagementAnswers.getValues(names), on: connection)
        case .unknown(let type): _ = ConnectionTimeouts.send(ManagementAnswers.unknown(type: type), on: connection)
        }
    }

    private mutating func dropConnection(_ connection: Int32) {
        RequestStart.release()
        if kept == connection { kept = nil }
        request.pointee.ipcFd = -1
        request.pointee.keepConnection = 0
        closeDescriptor(connection)
        launch.slot.set(.idle)
    }

    // MARK: - Helpers

    /// Every signal the worker catches: none may interrupt a plugin's system calls.
    static let requestSignals: [UnixSignal] = [.term, .int, .quit, .usr1]

    private mutating func handleSignals() {
        for signal in signals.drain() {
            switch signal {
            case .term, .int, .quit: stopping = true
            case .usr1:
                try? LogDestination.reopen()
                dispatcher.accessLog?.reopen()
            default: break
            }
        }
    }

    static func hasPendingBytes(_ fd: Int32) -> Bool {
        if RequestStart.pending(fd) > 0 { return true }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
    }

    /// "127.0.0.1:54321", "[::1]:54321", or "a unix socket client".
    static func peer(_ fd: Int32) -> String {
        guard let peer = IPAddress.peer(of: fd), let host = IPAddress.text(peer.bytes) else { return "a unix socket client" }
        return peer.bytes.count == 16 ? "[\(host)]:\(peer.port)" : "\(host):\(peer.port)"
    }
}

/// Refused connections, logged once per episode: the first of a kind at once, then at most one
/// line per kind every `interval`, with how many there were meanwhile.
struct RefusalLog {
    enum Kind: String { case readTimeout = "read timeout", tooLarge = "too large", protocolError = "protocol error" }

    static let interval = 10.0
    private var last: [Kind: MonotonicInstant] = [:]
    private var suppressed: [Kind: Int] = [:]

    mutating func note(_ kind: Kind, _ reason: String, peer: String, now: MonotonicInstant = .now()) {
        if let at = last[kind], at.seconds(until: now) < Self.interval {
            suppressed[kind, default: 0] += 1
            return
        }
        let more = suppressed[kind].map { " (and \($0) more like it in the last \(Formatting.seconds(Self.interval)))" } ?? ""
        ForkliftLogging.logger.warning("closed a connection from \(peer): \(reason)\(more)")
        last[kind] = now
        suppressed[kind] = nil
    }
}
