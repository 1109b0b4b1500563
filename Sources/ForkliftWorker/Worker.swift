import CFastCGI
import CForkliftSys
import ForkliftConfig
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
        var launch = launch
        // A standby that took a place says "serving PID" before its first wait for connections.
        var announcesServing = launch.isStandby
        ProcessIdentity.current = ProcessIdentity(role: .worker, pool: launch.pool.name, generation: launch.generation)
        // A standby has no slot until its host gives it one.
        if !launch.isStandby { launch.slot.claim(pid: getpid()) }
        ProcessTitle.set("forklift: \(launch.isStandby ? "standby " : "")worker pool=\(launch.pool.name) gen=\(launch.generation)")
        // If the host dies, we get TERM and finish like any stopped worker.
        ChildProcess.setParentDeathSignal(.term)
        if getppid() != launch.hostPID { ChildProcess.exitImmediately(WorkerExitCode.normal) }

        let log = ForkliftLogging.logger
        let signals: SignalDescriptor
        do {
            signals = try setUpSignalsAndLibfcgi()
            // A write to sealed preloaded memory still kills the worker, but says where; a crash
            // sends its backtrace to the host, which names the frames; SIGPWR makes the worker
            // send its current stack (the slow log, request_terminate_timeout) and carry on.
            forklift_backtrace_init(launch.readyFD)
            _ = forklift_fault_reporter_install(LogDestination.fileDescriptor, 1, LogDestination.format == .json ? 1 : 0)
            _ = forklift_stack_dump_install(UnixSignal.dump.rawValue)
        } catch {
            log.error("worker setup failed: \(error)")
            ChildProcess.exitImmediately(WorkerExitCode.setupFailed)
        }
        // Everything but the signals this worker handles: they stay blocked in every thread
        // (read from the signalfd), so the threads a plugin starts never receive TERM or USR1
        // (which would interrupt their system calls). The stack dump signal is unblocked once
        // worker init is done.
        try? signals.unblockAllOthers(alsoBlocking: [.dump])

        // The pool's scheduling class (process_scheduling), and forked while the master had
        // the host loading at idle CPU priority: to that class, from idle, before any plugin
        // code runs here, so that the threads worker init may start are born with it too.
        let serving: CPUPriority = launch.pool.privileges.scheduling == .batch ? .batch : .normal
        let current = CPUPriority.of(0)
        if (current == .idle && launch.leavesIdlePriority) || (current == .normal && serving == .batch) {
            do {
                try CPUPriority.set(serving, of: 0)
            } catch {
                let from = current == .idle ? "the idle CPU priority its host loaded at" : "normal scheduling"
                failInit(launch, "worker \(getpid()) cannot leave \(from) for process_scheduling = \"\(launch.pool.privileges.scheduling.rawValue)\": \(error)")
            }
        }
        for plugin in launch.plugins {
            do {
                try plugin.workerInit()
            } catch {
                failInit(launch, error.description)
            }
        }
        try? SignalPipe.mask([.dump], blocked: false)
        // The pipe stays open: backtraces go to the host through it.
        launch.tellHost("ready")

        if launch.isStandby {
            let wait = StandbyWait(release: EventCounter(fileDescriptor: launch.standbyFD), signals: signals, capacity: launch.board.capacity)
            guard let slot = wait.waitForSlot() else {
                log.debug("standby worker leaving: stopped while on standby")
                ChildProcess.exitImmediately(WorkerExitCode.normal)
            }
            launch.slot = launch.board.slot(slot)
            launch.slot.claim(pid: getpid())
            ProcessTitle.set("forklift: worker pool=\(launch.pool.name) gen=\(launch.generation)")
            // Gated (a reload not committed yet), it may wait at the gate a while, and there is
            // nothing to hurry: its host need not hold the next standby back meanwhile.
            if !launch.board.isLive {
                launch.tellHost("serving")
                announcesServing = false
            }
        }
        var gate = Gate(launch: launch, signals: signals)
        guard gate.waitUntilOpen() else {
            log.debug("worker leaving: stopped before its generation went live")
            ChildProcess.exitImmediately(WorkerExitCode.normal)
        }
        let (reason, loop): (String, AcceptLoop)
        do {
            (reason, loop) = try serve(launch, signals: signals, announcesServing: announcesServing)
        } catch {
            log.error("worker setup failed: \(error)")
            ChildProcess.exitImmediately(WorkerExitCode.setupFailed)
        }
        log.debug("worker leaving: \(reason)", metadata: ["served": "\(loop.served)"])
        launch.slot.set(.exiting)
        for plugin in launch.plugins { plugin.workerExit() }
        // Its last act: the host forks the replacement now, while the kernel tears this
        // process down (most of a millisecond), rather than once it has reaped it. Not for a
        // retired generation (nothing replaces its workers) or a failed accept (an exit the
        // host must see as a failure).
        let replaced = !loop.acceptFailed && !launch.board.isRetired
        // Retired after its max_requests, its teardown yields its core to whatever is woken
        // meanwhile: the host, the process taking its place, the other workers (SCHED_IDLE, every
        // thread: whichever drops the memory map last unmaps it; exit_mmap gives way at its
        // rescheduling points). Not when a TERM ended it: the host may be waiting for its reap
        // (recycled for its memory) and the teardown must not starve on a busy machine.
        let yieldsTeardown = replaced && loop.reachedRequestLimit
        if yieldsTeardown { try? CPUPriority.set(.idle, of: 0) } // before the line, which wakes the host
        if replaced { launch.tellHost("leaving") }
        if yieldsTeardown { try? CPUPriority.set(.idle, ofAllThreadsOf: getpid()) } // a plugin's threads (reads /proc: after the line)
        ChildProcess.exitImmediately(loop.acceptFailed ? WorkerExitCode.setupFailed : WorkerExitCode.normal)
    }

    /// Ours first: FCGX_Init installs its handlers only for signals still at their default,
    /// and a TERM or USR1 caught by libfcgi's would set its shutdown flag for good (every
    /// later accept fails). The stop signals are blocked for good and read from a signalfd
    /// (`SignalDescriptor`): a stop waits until the response is complete, and nothing a
    /// plugin does in a request is interrupted. Signals stay blocked until all is in place.
    static func setUpSignalsAndLibfcgi() throws -> SignalDescriptor {
        let signals = try SignalDescriptor(catching: AcceptLoop.requestSignals)
        // libfcgi's close after a response lingers: shutdown, then reads while the client
        // sends, polling 2 s at a time. A client that keeps its end open, or trickles,
        // held the worker that long. With 0 it reads only what has already arrived.
        setenv("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", "0", 1)
        _ = FCGX_Init()
        _ = signal(SIGHUP, SIG_IGN)
        ignoreBrokenPipe()
        return signals
    }

    /// The accept loop until it has a reason to leave.
    static func serve(_ launch: WorkerLaunch, signals: SignalDescriptor, announcesServing: Bool = false) throws -> (String, AcceptLoop) {
        // Only now watch the listener: EPOLLEXCLUSIVE wake-ups that went to the previous
        // generation's workers are not replayed to an epoll registered earlier, but an
        // epoll_ctl ADD sees a connection already queued.
        // batch-when-idle switches between SCHED_OTHER and SCHED_BATCH: for a worker that is
        // under SCHED_OTHER here (one that inherited another class from forklift keeps it).
        let batchWhenIdle = launch.pool.privileges.scheduling == .batchWhenIdle && CPUPriority.of(0) == .normal
        let waiter = try ConnectionWaiter(listenFD: launch.listenFD, parkFD: launch.parkFD, signalFD: signals.fileDescriptor,
                                          batchWhenIdle: batchWhenIdle)
        var loop = AcceptLoop(launch: launch, signals: signals, waiter: waiter, announcesServing: announcesServing)
        let reason = loop.run()
        return (reason, loop)
    }

    /// `forklift run --single-process`: this process is the whole pool (FCGI::ProcManager's
    /// n_processes 0): worker init, then requests one at a time until TERM, INT or QUIT, for
    /// running a plugin under a debugger. No host watches it: no slow log, no
    /// request_terminate_timeout, no recycling, and crashes are the debugger's.
    public static func serveInThisProcess(_ launch: WorkerLaunch) -> Int32 {
        let log = ForkliftLogging.logger
        launch.slot.claim(pid: getpid())
        do {
            let signals = try setUpSignalsAndLibfcgi()
            _ = forklift_fault_reporter_install(LogDestination.fileDescriptor, 1, LogDestination.format == .json ? 1 : 0)
            try signals.unblockAllOthers()
            for plugin in launch.plugins { try plugin.workerInit() }
            let (reason, loop) = try serve(launch, signals: signals)
            log.notice("single process leaving: \(reason) after \(loop.served) request(s)")
            for plugin in launch.plugins { plugin.workerExit() }
            return loop.acceptFailed ? WorkerExitCode.setupFailed : 0
        } catch {
            log.error("\(error)")
            return WorkerExitCode.initFailed
        }
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

/// Before serving, a worker waits at its generation's gate: the host closes the write end
/// when the master makes the generation live (USR2).
struct Gate {
    let launch: WorkerLaunch
    let signals: SignalDescriptor

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
