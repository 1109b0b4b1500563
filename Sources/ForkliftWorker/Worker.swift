import CFastCGI
import CForkliftSys
import ForkliftLogging
import ForkliftSystem
import Glibc
import Logging

/// A worker: worker init hooks, then libfcgi's accept loop, one request at a time.
///
/// Stopping follows FCGI::ProcManager: on TERM (or INT, QUIT) a worker idle in accept
/// leaves at once; a busy one finishes the request in flight — the client gets the whole
/// response — and then exits 0. Its handlers use SA_RESTART, so the signal never breaks a
/// read or write inside libfcgi halfway through a request.
public enum Worker {
    public static func run(_ launch: WorkerLaunch) -> Never {
        ProcessIdentity.current = ProcessIdentity(role: .worker, pool: launch.pool.name, generation: launch.generation)
        launch.slot.claim(pid: getpid())
        ProcessTitle.set("forklift: worker pool=\(launch.pool.name) gen=\(launch.generation)")
        // If the host dies, we get TERM and finish like any stopped worker.
        ChildProcess.setParentDeathSignal(.term)
        if getppid() != launch.hostPID { ChildProcess.exitImmediately(WorkerExitCode.normal) }

        let log = ForkliftLogging.logger
        let signals: SignalPipe
        do {
            // Ours first: FCGX_Init installs its handlers only for signals still at their
            // default, and a TERM or USR1 caught by libfcgi's would set its shutdown flag for
            // good (every later accept fails). Signals stay blocked until all is in place.
            signals = try SignalPipe(catching: [.term, .int, .quit, .usr1], restartSyscalls: true)
            _ = FCGX_Init()
            // A write to sealed preloaded memory still kills the worker, but says where.
            _ = forklift_fault_reporter_install(LogDestination.fileDescriptor)
            _ = signal(SIGHUP, SIG_IGN)
            ignoreBrokenPipe()
        } catch {
            log.error("worker setup failed: \(error)")
            ChildProcess.exitImmediately(WorkerExitCode.setupFailed)
        }
        // Everything but the signals this worker handles: threads a plugin starts in worker
        // init inherit that mask, so they never receive TERM or USR1 (which would interrupt
        // their system calls, and their handlers would not run where the worker expects).
        // The main thread unblocks them once worker init is done.
        unblockAllSignals()
        try? SignalPipe.mask(AcceptLoop.requestSignals, blocked: true)

        // Forked while the master had the host loading at idle CPU priority: back to normal
        // before any plugin code runs here, so that the threads worker init may start are
        // born at normal priority too.
        if launch.leavesIdlePriority && CPUPriority.of(0) == .idle {
            do {
                try CPUPriority.set(.normal, of: 0)
            } catch {
                failInit(launch, "worker \(getpid()) cannot leave the idle CPU priority its host loaded at: \(error)")
            }
        }
        for plugin in launch.plugins {
            do {
                try plugin.workerInit()
            } catch {
                failInit(launch, error.description)
            }
        }
        try? SignalPipe.mask(AcceptLoop.requestSignals, blocked: false)
        try? writeAll(launch.readyFD, "ready \(getpid())\n")
        closeDescriptor(launch.readyFD)

        var gate = Gate(launch: launch, signals: signals)
        guard gate.waitUntilOpen() else {
            log.debug("worker leaving: stopped before its generation went live")
            ChildProcess.exitImmediately(WorkerExitCode.normal)
        }
        // Only now watch the listener: EPOLLEXCLUSIVE wake-ups that went to the previous
        // generation's workers are not replayed to an epoll registered earlier, but an
        // epoll_ctl ADD sees a connection already queued.
        let waiter: ConnectionWaiter
        do {
            waiter = try ConnectionWaiter(listenFD: launch.listenFD, signalFD: signals.fileDescriptor)
        } catch {
            log.error("worker setup failed: \(error)")
            ChildProcess.exitImmediately(WorkerExitCode.setupFailed)
        }
        var loop = AcceptLoop(launch: launch, signals: signals, waiter: waiter)
        let reason = loop.run()

        log.debug("worker leaving: \(reason)", metadata: ["served": "\(loop.served)"])
        launch.slot.set(.exiting)
        for plugin in launch.plugins { plugin.workerExit() }
        ChildProcess.exitImmediately(loop.acceptFailed ? WorkerExitCode.setupFailed : WorkerExitCode.normal)
    }

    /// Worker init failed: tell the host why (one line, under PIPE_BUF, so it cannot
    /// interleave with another worker's), and leave; respawning would fail the same way.
    private static func failInit(_ launch: WorkerLaunch, _ reason: String) -> Never {
        ForkliftLogging.logger.error("\(reason)")
        let line = String(reason.prefix(3000).map { $0.isNewline ? " " : $0 })
        try? writeAll(launch.readyFD, "failed \(getpid()) \(line)\n")
        ChildProcess.exitImmediately(WorkerExitCode.initFailed)
    }
}

/// The request loop proper, separated so that `Worker.run` reads as setup, loop, teardown.
struct AcceptLoop {
    let launch: WorkerLaunch
    let signals: SignalPipe
    let waiter: ConnectionWaiter
    var dispatcher: Dispatcher
    let request: UnsafeMutablePointer<FCGX_Request>
    private(set) var served = 0
    private var stopping = false
    private(set) var acceptFailed = false

    init(launch: WorkerLaunch, signals: SignalPipe, waiter: ConnectionWaiter) {
        self.launch = launch
        self.signals = signals
        self.waiter = waiter
        dispatcher = Dispatcher(plugins: launch.plugins, pool: launch.pool, generation: launch.generation, board: launch.board,
                                slot: launch.slot, counters: launch.counters)
        request = .allocate(capacity: 1)
        request.initialize(to: FCGX_Request())
        // FCGI_FAIL_ACCEPT_ON_INTR: never sit inside accept() across a signal.
        FCGX_InitRequest(request, launch.listenFD, FCGI_FAIL_ACCEPT_ON_INTR)
    }

    /// Serves until told to stop, retired, or orphaned; returns why it stopped.
    mutating func run() -> String {
        let board = launch.board
        launch.slot.set(.idle)
        while !stopping {
            // Counted as waiting from here until accept() returns; see Scoreboard.
            guard launch.slot.enterWaiting(retiredBy: board) else { return "its generation was retired" }
            let kept = request.pointee.ipcFd >= 0 ? request.pointee.ipcFd : nil
            let events: Set<ConnectionWaiter.Event>
            do {
                events = try waiter.wait(keptConnection: kept)
            } catch {
                launch.slot.leaveWaiting()
                ForkliftLogging.logger.error("worker wait failed: \(error)")
                return "wait failed"
            }
            if events.contains(.signal) { handleSignals() }
            guard events.contains(.listenerReadable) || events.contains(.connectionReadable) else {
                launch.slot.leaveWaiting()
                continue
            }
            // Retired: a newer generation takes this connection once its gate opens (it
            // finds it still queued). Otherwise take it even when a stop just arrived: the
            // kernel woke this worker alone (EPOLLEXCLUSIVE), nobody else would.
            if board.isRetired {
                launch.slot.leaveWaiting()
                return "its generation was retired"
            }
            guard serveOne() else {
                if acceptFailed { return "accept failed" }
                continue
            }

            if launch.requestLimit > 0 && served >= launch.requestLimit { return "served its \(served) requests (max_requests)" }
            if getppid() != launch.hostPID { return "its host is gone" }
        }
        return "stop requested"
    }

    /// Accepts and serves one request; false when another worker took the connection.
    /// Called while counted as waiting; leaves that state as soon as accept() returned.
    private mutating func serveOne() -> Bool {
        // A stop signal waits until the response is complete: blocked, it cannot cut a
        // plugin's sleep, poll or read short with EINTR. It is delivered at the unblock.
        try? SignalPipe.mask(Self.requestSignals, blocked: true)
        defer { try? SignalPipe.mask(Self.requestSignals, blocked: false) }
        // Non-blocking listener: a worker that lost the race for this connection gets
        // EAGAIN here and goes back to waiting.
        let started = MonotonicInstant.now()
        launch.slot.markReading(now: started)
        let status = FCGX_Accept_r(request)
        let acceptErrno = errno
        launch.slot.leaveWaiting()
        guard status >= 0 else {
            launch.slot.set(.idle)
            if acceptErrno == EAGAIN || acceptErrno == EWOULDBLOCK || acceptErrno == EINTR { return false }
            if acceptErrno == EINVAL {
                // The master shut the listener down: forklift is stopping.
                stopping = true
                return false
            }
            // Anything else (EMFILE, a libfcgi shutdown flag) would fail again at once while
            // the listener stays readable: leave, and let the host start a fresh worker.
            ForkliftLogging.logger.error("accept failed (libfcgi status \(status), \(String(cString: strerror(acceptErrno)))); this worker leaves")
            acceptFailed = true
            return false
        }
        dispatcher.serve(request, started: started) // through to .finishing
        FCGX_Finish_r(request)
        // libfcgi keeps the descriptor open when the client asked to keep the connection.
        dispatcher.finished(kept: request.pointee.ipcFd >= 0)
        served += 1
        return true
    }

    /// Every signal the worker catches: none may interrupt a plugin's system calls.
    static let requestSignals: [UnixSignal] = [.term, .int, .quit, .usr1]

    private mutating func handleSignals() {
        for signal in signals.drain() {
            switch signal {
            case .term, .int, .quit: stopping = true
            case .usr1: try? LogDestination.reopen()
            default: break
            }
        }
    }
}

/// Before serving, a worker waits at its generation's gate: the host closes the write end
/// when the master makes the generation live (USR2).
struct Gate {
    let launch: WorkerLaunch
    let signals: SignalPipe

    /// True when the generation went live; false when the worker should leave unserved (a stop
    /// signal, or the gate opened because its host died, not because of a commit).
    mutating func waitUntilOpen() -> Bool {
        let gate = launch.gateFD
        while true {
            let ready = (try? waitReadable([gate, signals.fileDescriptor], timeoutSeconds: nil)) ?? []
            if ready.contains(signals.fileDescriptor) {
                for signal in signals.drain() where signal == .term || signal == .int || signal == .quit { return false }
            }
            if ready.contains(gate) {
                closeDescriptor(gate)
                // EOF also comes when the host dies: only the master's mark means "serve".
                return launch.board.isLive
            }
        }
    }
}
