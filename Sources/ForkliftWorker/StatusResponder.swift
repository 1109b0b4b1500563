import CFastCGI
import CForkliftSys
import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc

/// What the host hands the process that answers `status_listen`.
public struct StatusResponderLaunch {
    public let pool: PoolSettings
    public let generation: Int
    public let listenFD: Int32
    public let board: GenerationBoard
    public let counters: PoolCounters
    public let hostPID: pid_t

    public init(pool: PoolSettings, generation: Int, listenFD: Int32, board: GenerationBoard, counters: PoolCounters, hostPID: pid_t) {
        self.pool = pool
        self.generation = generation
        self.listenFD = listenFD
        self.board = board
        self.counters = counters
        self.hostPID = hostPID
    }
}

/// The process that answers `status_path` and `ping_path` on `status_listen`, outside the
/// workers, so the status page answers even while every worker is busy (PHP-FPM's "invisible
/// pool" for `pm.status_listen`). It runs no plugin code: it only reads the scoreboard.
///
/// It accepts each connection itself and hands libfcgi the open descriptor, with receive and
/// send timeouts on it, so a client that stalls holds it for at most `clientTimeout` per read
/// or write; libfcgi never accepts a connection itself here, and never lingers on a close.
public enum StatusResponder {
    static let clientTimeout = 2

    public static func run(_ launch: StatusResponderLaunch) -> Never {
        ProcessIdentity.current = ProcessIdentity(role: .status, pool: launch.pool.name, generation: launch.generation)
        ProcessTitle.set("forklift: status pool=\(launch.pool.name) gen=\(launch.generation)")
        ChildProcess.setParentDeathSignal(.term)
        if getppid() != launch.hostPID { ChildProcess.exitImmediately(0) }
        let log = ForkliftLogging.logger
        let signals: SignalPipe
        do {
            signals = try SignalPipe(catching: [.term, .int, .quit, .usr1], restartSyscalls: true)
            setenv("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", "0", 1) // see Worker.run
            _ = FCGX_Init()
            _ = signal(SIGHUP, SIG_IGN)
            ignoreBrokenPipe()
        } catch {
            log.error("status responder setup failed: \(error)")
            ChildProcess.exitImmediately(2)
        }
        unblockAllSignals()
        let pages = BuiltInPages(pool: launch.pool, generation: launch.generation, board: launch.board, counters: launch.counters)
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        request.initialize(to: FCGX_Request())
        // No listening socket for libfcgi: when a connection's first records are bad, its
        // FCGX_Accept_r closes it and accepts the next one *itself*, without our timeouts.
        // With -1 that accept fails at once instead.
        FCGX_InitRequest(request, -1, 0)
        var acceptPausedUntil: MonotonicInstant?
        while true {
            let paused = acceptPausedUntil.map { MonotonicInstant.now() < $0 } ?? false
            let pause = acceptPausedUntil.map { MonotonicInstant.now().seconds(until: $0) }
            let ready = (try? waitReadable(paused ? [signals.fileDescriptor] : [launch.listenFD, signals.fileDescriptor],
                                           timeoutSeconds: paused ? pause : nil)) ?? []
            if ready.contains(signals.fileDescriptor) {
                for signal in signals.drain() {
                    if signal == .usr1 { try? LogDestination.reopen() } else { ChildProcess.exitImmediately(0) }
                }
            }
            guard ready.contains(launch.listenFD) else { continue }
            let connection = forklift_accept_cloexec(launch.listenFD)
            guard connection >= 0 else {
                // EAGAIN: another took it. Out of descriptors (or memory): the listener stays
                // readable, so wait a little instead of spinning on it.
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { acceptPausedUntil = MonotonicInstant.now().advanced(bySeconds: 0.1) }
                continue
            }
            acceptPausedUntil = nil
            var timeout = timeval(tv_sec: clientTimeout, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            // libfcgi skips its own accept when the request already has a descriptor. Its
            // FCGX_Accept_r first finishes "the previous request", closing the descriptor
            // unless the connection is kept: say it is.
            request.pointee.keepConnection = 1
            request.pointee.ipcFd = connection
            guard FCGX_Accept_r(request) >= 0 else { continue } // a bad or stalled client: libfcgi closed it
            serve(request, pages: pages)
            // libfcgi's close lingers (shutdown, then reads while the client sends, 2 s at a
            // time, for as long as it trickles): with our read side shut first, its reads see
            // the end at once. The response still goes out.
            shutdown(connection, Int32(SHUT_RD))
            FCGX_Finish_r(request)
            if request.pointee.ipcFd >= 0 {
                // One request per connection here, even if the client asked to keep it.
                closeDescriptor(request.pointee.ipcFd)
                request.pointee.ipcFd = -1
            }
        }
    }

    private static func serve(_ fcgiRequest: UnsafeMutablePointer<FCGX_Request>, pages: BuiltInPages) {
        let request = RequestBridge(fcgiRequest)
        let response = ResponseBridge(request: fcgiRequest)
        if let page = pages.page(for: request.pathBytes) {
            pages.respond(page, query: request.param("QUERY_STRING") ?? "", response: response)
        } else {
            response.respond(status: 404, body: "404 Not Found: status_listen answers only status_path and ping_path\n")
        }
        response.sendHeadersIfNeeded()
    }
}
