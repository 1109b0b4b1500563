import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import ForkliftWorker
import Glibc
import Logging

/// The host's workers: forks them, waits for their worker init, replaces any that exit or
/// die, and stops them all on TERM.
struct WorkerPool {
    enum StartOutcome: Equatable { case ready, failed(String), stopRequested }

    let launch: HostLaunch
    let plugins: [PluginInstance]
    let signals: SignalPipe
    private let readyPipe: Pipe
    /// Workers wait on the read end until the generation goes live; closing the write end
    /// (at the master's USR2) lets all of them, and every later one, serve.
    private let gate: Pipe
    private var gateOpen = false
    /// The pipe to the master, until the host has said whether this generation is ready.
    private(set) var reportFD: Int32
    private var readyLines = LineBuffer()
    /// Live workers and when each was forked (the fork started: spawn latency is measured
    /// from it to the worker's "ready").
    private var workers: [pid_t: MonotonicInstant] = [:]
    private var stopping = false
    /// Respawn back-off after workers that die right after starting (a crash loop).
    private var backoff = RespawnBackoff()
    private var respawnAt: MonotonicInstant?
    private var memory: MemoryWatch

    init(launch: HostLaunch, plugins: [PluginInstance], signals: SignalPipe) throws {
        memory = MemoryWatch(pool: launch.pool, generation: launch.generation)
        self.launch = launch
        self.plugins = plugins
        self.signals = signals
        // Workers write "ready PID" or "failed PID reason" here after their worker init.
        readyPipe = try Pipe(nonBlocking: true)
        gate = try Pipe(nonBlocking: false)
        reportFD = launch.reportFD
    }

    /// The host has reported: close the pipe, so workers forked later do not hold it.
    mutating func closeReport() {
        closeDescriptor(reportFD)
        reportFD = -1
    }

    /// The master made this generation live: let the workers accept connections.
    mutating func openGate() {
        guard !gateOpen else { return }
        gateOpen = true
        closeDescriptor(gate.writeEnd)
        log.info("pool \(pool.name) gen \(launch.generation) is live: workers accept connections")
    }

    private var log: Logger { ForkliftLogging.logger }
    private var pool: PoolSettings { launch.pool }

    /// Forks `max_children` workers and waits until each passed worker init.
    mutating func start() -> StartOutcome {
        var waiting: Set<pid_t> = []
        for _ in 0..<pool.maxChildren {
            guard let pid = spawn() else { return .failed("pool \(pool.name): cannot fork a worker: \(SystemError("fork"))") }
            waiting.insert(pid)
        }
        while !waiting.isEmpty {
            _ = try? waitReadable([signals.fileDescriptor, readyPipe.readEnd], timeoutSeconds: nil)
            let arrived = signals.drain()
            // Lines first: a worker whose init failed wrote its reason before exiting, and
            // that reason is worth more than "exited with status 3".
            for line in readLines() {
                let fields = line.split(separator: " ", maxSplits: 2).map(String.init)
                guard fields.count >= 2, let pid = pid_t(fields[1]) else { continue }
                if fields[0] == "ready" {
                    waiting.remove(pid)
                    logReady(pid)
                }
                if fields[0] == "failed" { return .failed(fields.count > 2 ? fields[2] : "worker \(pid): worker init failed") }
            }
            for signal in arrived {
                switch signal {
                case .term, .int, .quit: return .stopRequested
                case .chld:
                    // Forget every reaped worker before deciding anything: stopAll waits for
                    // the ones still in `workers`.
                    let reaped = ChildProcess.reap().filter { workers.removeValue(forKey: $0.pid) != nil }
                    if let dead = reaped.first(where: { waiting.contains($0.pid) }) {
                        return .failed(initFailure(pid: dead.pid, status: dead.status))
                    }
                    for (pid, status) in reaped { log.warning("worker \(pid) \(status) right after it started") }
                default: break
                }
            }
        }
        return .ready
    }

    /// Serves until stopped: replace workers that leave, forward USR1, stop on TERM.
    mutating func supervise() {
        while !(stopping && workers.isEmpty) {
            // No timers once stopping: a past respawn time would be a zero timeout, a busy loop.
            let deadline = stopping ? nil : [respawnAt, memory.nextDeadline].compactMap { $0 }.min()
            let timeout = deadline.map { MonotonicInstant.now().seconds(until: $0) }
            let ready = (try? waitReadable([signals.fileDescriptor, readyPipe.readEnd], timeoutSeconds: timeout)) ?? []
            if ready.contains(readyPipe.readEnd) {
                for line in readLines() {
                    let fields = line.split(separator: " ", maxSplits: 2)
                    if fields.first == "failed" { log.error("\(fields.last ?? "")") }
                    if fields.first == "ready", fields.count > 1, let pid = pid_t(fields[1]) { logReady(pid) }
                }
            }
            for signal in signals.drain() {
                switch signal {
                case .term, .int, .quit:
                    if !stopping { beginStop() }
                case .chld:
                    reapWorkers()
                case .usr2:
                    openGate()
                case .usr1:
                    try? LogDestination.reopen()
                    for pid in workers.keys { ChildProcess.send(.usr1, to: pid) }
                default: break
                }
            }
            if !stopping {
                for pid in memory.tick(workers: Array(workers.keys)) { ChildProcess.send(.term, to: pid) }
                fillPool()
            }
        }
        log.info("all workers of pool \(pool.name) gen \(launch.generation) have exited")
    }

    /// Stop at once (a failed start): TERM everyone and wait for them.
    mutating func stopAll() {
        beginStop()
        while !workers.isEmpty {
            _ = try? waitReadable([signals.fileDescriptor], timeoutSeconds: 1)
            _ = signals.drain()
            for (pid, _) in ChildProcess.reap() { workers.removeValue(forKey: pid) }
            if waitpid(-1, nil, WNOHANG) == -1 && errno == ECHILD { workers.removeAll() } // none left at all
        }
    }

    private mutating func beginStop() {
        stopping = true
        log.info("stopping \(workers.count) workers of pool \(pool.name) gen \(launch.generation)")
        for pid in workers.keys { ChildProcess.send(.term, to: pid) }
    }

    private mutating func reapWorkers() {
        for (pid, status) in ChildProcess.reap() {
            guard let started = workers.removeValue(forKey: pid) else { continue }
            let recycledForMemory = memory.recycled.contains(pid)
            memory.forget(pid)
            if stopping { continue }
            let lived = started.seconds(until: .now())
            switch status {
            case .exited(WorkerExitCode.normal) where recycledForMemory:
                log.info("worker \(pid) left after exceeding max_private_memory; replacing it")
            case .exited(WorkerExitCode.normal):
                log.info("worker \(pid) retired after serving its requests; replacing it")
                backoff.reset()
            case .exited(WorkerExitCode.initFailed):
                log.error("worker \(pid) failed its worker init; replacing it")
                respawnAt = MonotonicInstant.now().advanced(bySeconds: backoff.next())
            default:
                log.error("worker \(pid) \(status) after \(Formatting.oneDecimal(lived)) s; replacing it")
                if lived < 1 { respawnAt = MonotonicInstant.now().advanced(bySeconds: backoff.next()) }
            }
        }
    }

    private mutating func fillPool() {
        if let at = respawnAt, MonotonicInstant.now() < at { return }
        respawnAt = nil
        while workers.count < pool.maxChildren {
            guard spawn() != nil else {
                log.error("cannot fork a worker: \(SystemError("fork")); retrying")
                respawnAt = MonotonicInstant.now().advanced(bySeconds: backoff.next())
                return
            }
        }
    }

    private mutating func spawn() -> pid_t? {
        let limit = pool.maxRequests > 0 ? pool.maxRequests + Int.random(in: 0...pool.maxRequestsJitter) : 0
        let workerLaunch = WorkerLaunch(pool: pool, generation: launch.generation, listenFD: launch.listenFD, plugins: plugins,
                                        requestLimit: limit, readyFD: readyPipe.writeEnd, hostPID: getpid(), gateFD: gate.readEnd,
                                        slot: launch.slot, leavesIdlePriority: launch.loadsInBackground)
        let signals = self.signals
        let readEnd = readyPipe.readEnd
        let gateWriteEnd = gateOpen ? -1 : gate.writeEnd
        let forkStarted = MonotonicInstant.now()
        let reportFD = self.reportFD
        guard let pid = try? ChildProcess.spawn(prepareChild: {
            signals.reset()
            closeDescriptor(readEnd)
            closeDescriptor(reportFD) // the master's EOF on it must mean "the host is done reporting"
            closeDescriptor(gateWriteEnd) // a worker holding it would keep its own gate shut
        }, { Worker.run(workerLaunch) }) else { return nil }
        workers[pid] = forkStarted
        return pid
    }

    private mutating func readLines() -> [String] {
        var lines: [String] = []
        while let bytes = try? readAvailable(readyPipe.readEnd), !bytes.isEmpty {
            lines += readyLines.append(bytes)
        }
        return lines
    }

    private func logReady(_ pid: pid_t) {
        guard let forked = workers[pid] else { return }
        log.debug("worker \(pid) ready \(Formatting.milliseconds(from: forked)) ms after fork")
    }

    private func initFailure(pid: pid_t, status: ExitStatus) -> String {
        "pool \(pool.name): worker \(pid) \(status) during worker init"
    }
}

/// Doubling delays, 0.1 s up to 30 s, so a plugin that crashes every worker at once does not
/// turn the host into a fork bomb.
struct RespawnBackoff {
    private var delay = 0.0

    mutating func next() -> Double {
        delay = delay == 0 ? 0.1 : min(delay * 2, 30)
        return delay
    }

    mutating func reset() { delay = 0 }
}
