import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import ForkliftWorker
import Glibc
import Logging

/// The host's shell around `PoolCore`: it waits (signals, the workers' ready pipe, the
/// listener for ondemand pools, the core's next deadline), turns what it sees into events,
/// and carries out the actions the core returns. It decides nothing itself.
///
/// The worker body is handed in, as the master is handed the host body: the pool forks
/// processes that run it, and never runs it itself.
struct WorkerPool {
    typealias WorkerBody = (WorkerLaunch) -> Never

    let launch: HostLaunch
    let plugins: [PluginInstance]
    let signals: SignalPipe
    let workerBody: WorkerBody
    /// Workers write "ready PID" or "failed PID reason" here after their worker init,
    /// "leaving PID" when they leave of their own accord, and a standby that took a place
    /// "serving PID" once it waits for connections.
    private let readyPipe: Pipe
    /// Workers wait on the read end until the generation goes live; closing the write end
    /// (at the master's USR2) lets all of them, and every later one, serve.
    private let gate: Pipe
    private var gateOpen = false
    private var readyLines = LineBuffer()
    private var core: PoolCore
    /// Events that actions produced (a fork's pid, a measurement), handled before waiting again.
    private var pending: [PoolCore.Event] = []
    /// Builds the ready report's summary, once the first workers passed worker init.
    private let summary: () -> String
    private var symbolicator = Symbolicator()
    /// Backtraces read from workers, to be named (see `nameBacktraces`).
    private var unnamedBacktraces: [(pid: pid_t, kind: String, signal: UnixSignal, addresses: [UInt], received: MonotonicInstant)] = []
    /// catch_workers_output: each worker's stdout and stderr, by read end.
    private var outputs: [Int32: WorkerOutput] = [:]
    /// The pool's slow log, opened at its first record (and again after USR1).
    private var slowlogFD: Int32 = -1
    /// What plugins started in workers that are gone.
    private var foreign = ForeignChildren()
    /// standby_workers: each standby's eventfd, which its slot is posted to, by pid.
    private var standbyReleases: [pid_t: EventCounter] = [:]

    init(launch: HostLaunch, plugins: [PluginInstance], signals: SignalPipe, workerBody: @escaping WorkerBody,
         summary: @escaping () -> String) throws {
        self.launch = launch
        self.plugins = plugins
        self.signals = signals
        self.workerBody = workerBody
        self.summary = summary
        // A log the pool cannot write is a failed start (or a rolled-back reload) naming it,
        // not lines lost in silence later.
        for (key, path) in [("access_log", launch.pool.accessLog), ("slowlog", launch.pool.slowlog)] {
            guard let path else { continue }
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw SystemError("cannot open \(key) \(path)") }
            close(fd)
        }
        readyPipe = try Pipe(nonBlocking: true)
        gate = try Pipe(nonBlocking: false)
        let settings = PoolCore.Settings(pool: launch.pool, global: launch.global, generation: launch.generation, capacity: launch.board.capacity)
        core = PoolCore(settings: settings, hostPID: getpid(), now: .now())
    }

    private var log: Logger { ForkliftLogging.logger }

    /// Forks the first workers, then serves until stopped; exits with the core's status.
    mutating func run() -> Never {
        pending.append(.start)
        while true {
            drainPending()
            if !unnamedBacktraces.isEmpty {
                nameBacktraces(now: .now())
                drainPending()
            }
            let now = MonotonicInstant.now()
            var fds = [signals.fileDescriptor, readyPipe.readEnd] + outputs.keys.sorted()
            let watchListener = core.watchesListener(now: now)
            // ondemand: a parked connection sent back with a request waits for a worker too.
            if watchListener { fds += [launch.listenFD, launch.parkFD].filter { $0 >= 0 } }
            let timeout = [core.nextDeadline, backtraceDeadline, foreign.nextDeadline].compactMap { $0 }.min().map { now.seconds(until: $0) }
            let ready = (try? waitReadable(fds, timeoutSeconds: timeout)) ?? []
            // Lines first: a worker whose init failed wrote its reason before exiting, and
            // that reason is worth more than "exited with status 3".
            if ready.contains(readyPipe.readEnd) { readWorkerLines() }
            for fd in ready where outputs[fd] != nil { readOutput(fd) }
            handleSignals()
            if watchListener && (ready.contains(launch.listenFD) || (launch.parkFD >= 0 && ready.contains(launch.parkFD))) {
                pending.append(.connectionWaiting(observe(measuringQueue: false)))
            }
            let woke = MonotonicInstant.now()
            for pid in foreign.due(now: woke) {
                log.warning("pool \(launch.pool.name) gen \(launch.generation): KILL to pid \(pid) (\(ProcessTitle.of(pid))), a process a plugin started, still there \(Formatting.seconds(ForeignChildren.grace)) after TERM")
                ChildProcess.send(.kill, to: pid)
            }
            if let deadline = core.nextDeadline, woke >= deadline {
                // The listen queue once a second, at the core's periodic tick: it costs a
                // netlink round trip for a unix socket.
                pending.append(.tick(observe(measuringQueue: woke >= core.nextTick)))
            }
        }
    }

    private mutating func drainPending() {
        while !pending.isEmpty {
            let event = pending.removeFirst()
            for action in core.handle(event, now: .now()) { perform(action) }
        }
    }

    private mutating func readWorkerLines() {
        while let bytes = try? readAvailable(readyPipe.readEnd), !bytes.isEmpty {
            for line in readyLines.append(bytes) {
                if line.hasPrefix("backtrace ") {
                    readBacktrace(line)
                    continue
                }
                let fields = line.split(separator: " ", maxSplits: 2).map(String.init)
                guard fields.count >= 2, let pid = pid_t(fields[1]) else { continue }
                switch fields[0] {
                case "ready": pending.append(.workerReady(pid: pid))
                case "leaving": pending.append(.workerLeaving(pid: pid))
                case "serving": pending.append(.standbyServing(pid: pid))
                case "failed": pending.append(.workerInitFailed(pid: pid, reason: fields.count > 2 ? fields[2] : "worker \(pid): worker init failed"))
                default: break
                }
            }
        }
    }

    /// "backtrace KIND PID SIGNO ADDR...", written by a worker's signal handler: named here,
    /// where the same images sit at the same addresses.
    private mutating func readBacktrace(_ line: String) {
        let words = line.split(separator: " ")
        guard words.count >= 4, let pid = pid_t(words[2]), let signo = Int32(words[3]), core.workers[pid] != nil else { return }
        let addresses = words.dropFirst(4).compactMap { UInt($0, radix: 16) }
        unnamedBacktraces.append((pid, String(words[1]), UnixSignal(signo), addresses, .now()))
    }

    /// A crash record waits for its worker's reap (at most `crashReapWait`), so that its
    /// replacement is forked before the naming.
    static let crashReapWait = 0.5

    private var backtraceDeadline: MonotonicInstant? {
        unnamedBacktraces.map { $0.kind == "crash" && core.workers[$0.pid] != nil ? $0.received.advanced(bySeconds: Self.crashReapWait) : $0.received }.min()
    }

    /// Named once the events before them are handled: a crashed worker's replacement is forked
    /// first (reading a plugin's symbol tables the first time takes a while, longer in a debug
    /// build), so the pool answers again at once.
    private mutating func nameBacktraces(now: MonotonicInstant) {
        var due: [(pid: pid_t, kind: String, signal: UnixSignal, addresses: [UInt], received: MonotonicInstant)] = []
        unnamedBacktraces.removeAll { backtrace in
            let waits = backtrace.kind == "crash" && core.workers[backtrace.pid] != nil
                && now < backtrace.received.advanced(bySeconds: Self.crashReapWait)
            if !waits { due.append(backtrace) }
            return !waits
        }
        for (pid, kind, signal, addresses, _) in due {
            // The first frames are the capture itself, its handler and the signal trampoline; the
            // last ones, below the worker's body, are how the host and the master forked it.
            var frames = symbolicator.describe(addresses, skipping: min(addresses.count, 3))
            if let body = frames.firstIndex(where: { $0.contains("ForkliftWorker.Worker.run(") }) { frames = Array(frames.prefix(through: body)) }
            pending.append(.backtrace(pid: pid, kind: kind, signal: signal, frames: frames))
        }
    }


    private mutating func handleSignals() {
        for signal in signals.drain() {
            switch signal {
            case .term, .int, .quit:
                pending.append(.stop)
            case .chld:
                reapWorkers()
            case .usr2:
                pending.append(.goLive)
            case .usr1:
                try? LogDestination.reopen()
                closeDescriptor(slowlogFD) // reopened at its next record
                slowlogFD = -1
                for pid in Array(core.workers.keys) + core.standbys.pids { ChildProcess.send(.usr1, to: pid) }
                if let responder = core.responder.pid { ChildProcess.send(.usr1, to: responder) }
                // Workers reopen before their next accept, so this line says the pool is done.
                let standbys = core.standbys.isEmpty ? "" : " and \(core.standbys.count) standby workers"
                log.notice("pool \(launch.pool.name) gen \(launch.generation): log files reopened, SIGUSR1 sent to \(core.workers.count) workers\(standbys)")
            case .dump:
                dumpState()
            default:
                break
            }
        }
    }

    /// The scoreboard now, and (for the live host, when asked) the listen queue.
    private func observe(measuringQueue: Bool) -> Observation {
        let snapshot = BoardReader.read(launch.board)
        var observation = Observation(scaleTarget: launch.board.target)
        for record in snapshot.workers { observation.records[record.slot] = record }
        if measuringQueue, core.isLive, !core.isStopping, let queue = ListenQueue.measure(launch.listenFD) {
            launch.counters.storeListenQueue(length: queue.waiting, backlog: queue.backlog)
            observation.listenQueue = queue.waiting
        }
        return observation
    }

    private mutating func reapWorkers() {
        let reaped = ChildProcess.reap()
        // A worker writes its failure's reason before it exits: read the lines again now that
        // it is reaped, so that the reason is handled before the exit.
        readWorkerLines()
        // And what it printed last, before its exit is logged.
        for pid in reaped.map(\.pid) {
            for (fd, output) in outputs where output.pid == pid { readOutput(fd, final: true) }
        }
        for (pid, _) in reaped { foreign.reaped(pid) }
        // What a plugin started in a worker, or in a standby's worker init, goes with it.
        if reaped.contains(where: { core.workers[$0.pid] != nil || core.standbys.contains($0.pid) }) { terminateForeignChildren() }
        // A standby's exit goes before the other lines read above (a worker's "leaving", which
        // would release it): one that died is not there to take a place. Its own lines (the
        // reason its worker init failed) go before its exit, as always.
        let standbyExits = reaped.filter { core.standbys.contains($0.pid) }
        if !standbyExits.isEmpty {
            let dying = Set(standbyExits.map(\.pid))
            func concernsDying(_ event: PoolCore.Event) -> Bool {
                switch event {
                case .workerReady(let pid), .workerInitFailed(let pid, _), .standbyServing(let pid): dying.contains(pid)
                default: false
                }
            }
            for (pid, _) in standbyExits { closeStandbyRelease(of: pid) }
            pending = pending.filter(concernsDying)
                + standbyExits.map { .workerExited(pid: $0.pid, status: $0.status, served: false, active: false) }
                + pending.filter { !concernsDying($0) }
        }
        for (pid, status) in reaped where !core.standbys.contains(pid) {
            if pid == core.responder.pid {
                pending.append(.responderExited(pid: pid, status: status))
                continue
            }
            guard let worker = core.workers[pid] else { continue }
            // Its last words: did it serve, did it die in the middle of a request?
            let last = BoardReader.read(slot: worker.slot, of: launch.board)
            let mine = last?.pid == pid ? last : nil
            let active = mine?.state == .running || mine?.state == .finishing
            if active { launch.counters.correctActive(by: -1) } // it never said it finished
            launch.board.slot(worker.slot).release()
            // Its request, for the crash record: what the slot said, checked like any slot.
            let request = mine.flatMap { record -> String? in
                guard active else { return nil }
                let age = record.requestAge(at: .now()).map { ", \(Formatting.oneDecimal($0)) s in" } ?? ""
                return "\(record.method.isEmpty ? "-" : record.method) \(record.uri.isEmpty ? "-" : record.uri) (plugin \(record.plugin.isEmpty ? "-" : record.plugin)\(age))"
            }
            pending.append(.workerExited(pid: pid, status: status, served: (mine?.requests ?? 0) > 0 || mine?.state.isActive == true,
                                         active: active, request: request))
        }
    }

    private mutating func perform(_ action: PoolCore.Action) {
        switch action {
        case .fork(let slot):
            switch spawn(slot: slot) {
            case .success(let pid): pending.append(.forked(pid: pid, slot: slot))
            case .failure(let error): pending.append(.forkFailed(slot: slot, reason: "\(error)"))
            }
        case .forkStandby:
            switch spawn(slot: nil) {
            case .success(let pid): pending.append(.standbyForked(pid: pid))
            case .failure(let error): pending.append(.standbyForkFailed(reason: "\(error)"))
            }
        case .releaseStandby(let pid, let slot):
            release(standby: pid, into: slot)
        case .signal(let pid, let signal):
            ChildProcess.send(signal, to: pid)
        case .openGate:
            guard !gateOpen else { return }
            gateOpen = true
            closeDescriptor(gate.writeEnd)
        case .reportReady:
            report(.ready(summary: summary()))
        case .report(let message):
            report(message)
        case .log(let level, let message):
            log.log(level, message)
        case .publish(let state):
            launch.board.publish(state)
        case .measureMemory(let pids):
            var usages: [pid_t: MemoryUsage] = [:]
            for pid in pids { usages[pid] = MemoryUsage.of(pid) }
            pending.append(.memoryMeasured(host: MemoryUsage.of(getpid()), workers: usages, at: .now()))
        case .storeMemory(let slot, let pid, let usage):
            launch.board.storeMemory(slot: slot, pid: pid, pssKB: usage.pss / 1024, privateDirtyKB: usage.privateDirty / 1024,
                                     sharedKB: (usage.sharedClean + usage.sharedDirty) / 1024)
        case .storeHostMemory(let usage):
            launch.board.storeHostMemory(pssKB: usage.pss / 1024, privateDirtyKB: usage.privateDirty / 1024)
        case .countMaxChildrenReached:
            launch.counters.countMaxChildrenReached()
        case .countSlowRequest:
            launch.counters.countSlowRequest()
        case .slowlog(let record):
            writeSlowlog(record)
        case .forkResponder:
            switch spawnResponder() {
            case .success(let pid): pending.append(.responderForked(pid: pid))
            case .failure(let error): pending.append(.responderForkFailed(reason: "\(error)"))
            }
        case .exit(let status):
            stopForeignChildren()
            ChildProcess.exitImmediately(status)
        }
    }

    /// TERMs the host's children that are neither workers nor the responder: what plugins
    /// started in workers that are gone.
    private mutating func terminateForeignChildren() {
        let known = Set(core.workers.keys).union(core.standbys.pids).union(core.responder.pid.map { [$0] } ?? [])
        let strays = ChildProcess.children().filter { !known.contains($0) }
        for pid in foreign.adopted(strays, now: .now()) {
            log.info("pool \(launch.pool.name) gen \(launch.generation): TERM to pid \(pid) (\(ProcessTitle.of(pid))), a process a plugin started in a worker that is gone")
            if ChildProcess.send(.term, to: pid) == .notPermitted {
                log.warning("pool \(launch.pool.name) gen \(launch.generation): cannot signal pid \(pid), a process a plugin started: not permitted (it changed users); it may outlive the pool")
            }
        }
    }

    /// The host is leaving, its workers gone: what plugins started goes too, TERM first, KILL
    /// after a moment, so that nothing outlives a stop or a reload's drain.
    private mutating func stopForeignChildren() {
        terminateForeignChildren()
        let deadline = MonotonicInstant.now().advanced(bySeconds: 2)
        while !ChildProcess.children().isEmpty && MonotonicInstant.now() < deadline {
            _ = ChildProcess.reap()
            usleep(10_000) // the host's last act: nothing else to wait for
        }
        for pid in ChildProcess.children() { ChildProcess.send(.kill, to: pid) }
        _ = ChildProcess.reap()
    }

    private func report(_ message: HostReport) {
        try? ReportChannel.send(message.line, over: launch.reportFD)
    }

    /// Logs what a worker printed, a line at a time; at its end (EOF, or `final` once it is
    /// reaped) whatever is left.
    private mutating func readOutput(_ fd: Int32, final: Bool = false) {
        guard var output = outputs[fd] else { return }
        var closed = false
        for _ in 0..<4 { // at most 256 KiB per wake: one chatty worker cannot stall the host
            guard let bytes = try? readAvailable(fd) else {
                closed = true
                break
            }
            if bytes.isEmpty { break }
            for line in output.lines.append(bytes) { logOutput(line, of: output) }
        }
        if closed || final {
            if let rest = output.lines.remainder() { logOutput(rest, of: output) }
            closeDescriptor(fd)
            outputs[fd] = nil
        } else {
            outputs[fd] = output
        }
    }

    private func logOutput(_ line: String, of output: WorkerOutput) {
        let text = launch.pool.decorateWorkersOutput
            ? "[pool \(launch.pool.name)] worker \(output.pid) said into \(output.stream): \(line)"
            : line
        log.notice("\(text)")
    }

    /// Forks a worker into `slot`, or (nil) a standby, which takes a slot when it is released.
    private mutating func spawn(slot: Int?) -> Result<pid_t, SystemError> {
        let limit = launch.pool.maxRequests > 0 ? launch.pool.maxRequests + Int.random(in: 0...launch.pool.maxRequestsJitter) : 0
        var release: EventCounter?
        if slot == nil {
            do {
                release = try EventCounter()
            } catch {
                return .failure(error as? SystemError ?? SystemError("eventfd"))
            }
        }
        // A standby's slot is a placeholder it does not touch until it is given its own.
        let workerSlot = launch.board.slot(slot ?? 0)
        if slot != nil { workerSlot.prepare() }
        let workerLaunch = WorkerLaunch(pool: launch.pool, generation: launch.generation, listenFD: launch.listenFD, parkFD: launch.parkFD, plugins: plugins,
                                        requestLimit: limit, readyFD: readyPipe.writeEnd, hostPID: getpid(), gateFD: gate.readEnd,
                                        board: launch.board, slot: workerSlot, counters: launch.counters,
                                        leavesIdlePriority: launch.loadsInBackground, standbyFD: release?.fileDescriptor ?? -1)
        let signals = self.signals
        let readEnd = readyPipe.readEnd
        let gateWriteEnd = gateOpen ? -1 : gate.writeEnd
        let reportFD = launch.reportFD
        let statusListenFD = launch.statusListenFD ?? -1
        let body = workerBody
        // catch_workers_output: the worker's stdout and stderr, each a pipe of its own (lines
        // of different workers never mix; a line longer than PIPE_BUF stays whole).
        var capture: (stdout: Pipe, stderr: Pipe)?
        if launch.pool.catchWorkersOutput {
            do {
                capture = (try Pipe(nonBlocking: false), try Pipe(nonBlocking: false))
                try setNonBlocking(capture!.stdout.readEnd)
                try setNonBlocking(capture!.stderr.readEnd)
            } catch {
                capture?.stdout.close()
                capture?.stderr.close()
                capture = nil
                log.error("catch_workers_output: cannot make a pipe: \(error); this worker prints where forklift does")
            }
        }
        let captured = capture
        let otherOutputs = Array(outputs.keys)
        // Other standbys' eventfds are theirs alone.
        let otherReleases = standbyReleases.values.map(\.fileDescriptor)
        do {
            let pid = try ChildProcess.spawn(prepareChild: {
                for fd in otherReleases { closeDescriptor(fd) }
                signals.reset()
                closeDescriptor(readEnd)
                closeDescriptor(reportFD) // the master's EOF on it must mean "the host is gone"
                closeDescriptor(gateWriteEnd) // a worker holding it would keep its own gate shut
                closeDescriptor(statusListenFD) // answered by the host's status responder only
                for fd in otherOutputs { closeDescriptor(fd) } // other workers' pipes: their EOF is theirs
                if let captured {
                    // Forklift's own log lines must not go round through the pipe.
                    LogDestination.moveOffStandardError()
                    dup2(captured.stdout.writeEnd, 1)
                    dup2(captured.stderr.writeEnd, 2)
                    captured.stdout.close()
                    captured.stderr.close()
                }
            }, { body(workerLaunch) })
            if let captured {
                closeDescriptor(captured.stdout.writeEnd)
                closeDescriptor(captured.stderr.writeEnd)
                outputs[captured.stdout.readEnd] = WorkerOutput(pid: pid, stream: "stdout")
                outputs[captured.stderr.readEnd] = WorkerOutput(pid: pid, stream: "stderr")
            }
            if let release { standbyReleases[pid] = release }
            return .success(pid)
        } catch {
            if slot != nil { workerSlot.release() }
            release?.close()
            return .failure(error as? SystemError ?? SystemError("fork"))
        }
    }

    /// Gives a standby its slot: the slot is made ready for it, then its number (plus one) goes
    /// to the standby's eventfd. One that died and is not reaped yet takes the post all the
    /// same (an eventfd's write does not fail for a reader gone): its reap follows, as that of a
    /// worker of the slot that died right after it started.
    private mutating func release(standby pid: pid_t, into slot: Int) {
        let workerSlot = launch.board.slot(slot)
        workerSlot.prepare()
        do {
            guard let release = standbyReleases.removeValue(forKey: pid) else { throw SystemError("no eventfd", errno: EBADF) }
            defer { release.close() }
            try release.post(UInt64(slot) + 1)
            log.debug("standby worker \(pid) takes slot \(slot)")
        } catch {
            // It would wait for ever: TERMed, it is reaped as a worker of that slot that died
            // right after it started, and replaced. The slot holds no process meanwhile.
            log.warning("pool \(launch.pool.name) gen \(launch.generation): standby worker \(pid) cannot take slot \(slot): \(error); stopping it")
            workerSlot.release()
            ChildProcess.send(.term, to: pid)
        }
    }

    private mutating func closeStandbyRelease(of pid: pid_t) {
        standbyReleases.removeValue(forKey: pid)?.close()
    }

    /// A slow request with its stack, to `slowlog` (the error log if it is not set).
    private mutating func writeSlowlog(_ record: String) {
        guard let path = launch.pool.slowlog else {
            log.warning("\(record)")
            return
        }
        if slowlogFD < 0 { slowlogFD = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640) }
        guard slowlogFD >= 0 else {
            log.error("cannot open slowlog \(path): \(String(cString: strerror(errno))); the record follows: \(record)")
            return
        }
        try? writeAll(slowlogFD, "\(ForkliftLogHandler.timestamp()) [pool \(launch.pool.name) gen \(launch.generation)] \(record)\n")
    }

    /// The process that answers status_listen: it runs no plugin code, only reads the board.
    private func spawnResponder() -> Result<pid_t, SystemError> {
        guard let statusListenFD = launch.statusListenFD else { return .failure(SystemError("status_listen", errno: EBADF)) }
        let responderLaunch = StatusResponderLaunch(pool: launch.pool, generation: launch.generation, listenFD: statusListenFD,
                                                    board: launch.board, counters: launch.counters, hostPID: getpid())
        let signals = self.signals
        let keep: Set<Int32> = [statusListenFD, LogDestination.fileDescriptor]
        do {
            return .success(try ChildProcess.spawn(prepareChild: {
                signals.reset()
                SelfInspection.closeDescriptors(except: keep) // nothing of the workers', nothing of the master's
            }, { StatusResponder.run(responderLaunch) }))
        } catch let error as SystemError {
            return .failure(error)
        } catch {
            return .failure(SystemError("fork"))
        }
    }

    /// A state dump (SIGPWR, or `forklift status --dump`): the core's view, then the board's.
    private func dumpState() {
        let now = MonotonicInstant.now()
        for line in core.dumpLines(now: now) { log.notice("dump: \(line)") }
        let snapshot = BoardReader.read(launch.board, now: now)
        for worker in snapshot.workers {
            log.notice("dump:   slot \(worker.slot) pid \(worker.pid) \(worker.state) for \(Formatting.oneDecimal(worker.stateSince.seconds(until: now))) s, \(worker.requests) requests, last \(worker.method) \(worker.uri) \(worker.lastStatus)")
        }
        if snapshot.unreadable > 0 { log.notice("dump:   \(snapshot.unreadable) slots could not be read") }
    }
}

/// One of a worker's output streams, caught for the log.
struct WorkerOutput {
    let pid: pid_t
    let stream: String
    var lines = LineBuffer()
}
