import CForkliftSys
import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import ForkliftWorker
import Glibc

/// The host ("zygote") of one pool and generation: it loads the pool's plugins, runs their
/// preload hooks, forks the workers — which share the preloaded memory copy-on-write — and
/// keeps `max_children` of them alive until the master tells it to stop.
///
/// Its workers accept no connection until the master makes the generation live (USR2 to
/// the host), so a generation that fails halfway through a reload never served a request.
///
/// It leads its own process group (the master's spawn sets it), so the master can signal or
/// KILL it with all its workers at once.
public enum Host {
    /// The host's body, for the master to run in the processes it forks; its workers run
    /// `workerBody`.
    public static func run(_ launch: HostLaunch) -> Never {
        run(launch, workerBody: Worker.run)
    }

    static func run(_ launch: HostLaunch, workerBody: @escaping WorkerPool.WorkerBody) -> Never {
        let pool = launch.pool
        ProcessIdentity.current = ProcessIdentity(role: .host, pool: pool.name, generation: launch.generation)
        ProcessTitle.set("forklift: host pool=\(pool.name) gen=\(launch.generation)")
        // If the master dies, stop like on TERM: the workers finish their requests first.
        ChildProcess.setParentDeathSignal(.term)
        // What a plugin starts in a worker becomes the host's when that worker is gone
        // (`ForeignChildren`), not init's: the host stops it.
        ChildProcess.becomeSubreaper()
        if getppid() != launch.masterPID { ChildProcess.exitImmediately(1) }

        let log = ForkliftLogging.logger
        let report = { (message: HostReport) in try? ReportChannel.send(message.line, over: launch.reportFD) }
        let signals: SignalPipe
        do {
            signals = try SignalPipe(catching: [.term, .int, .quit, .chld, .usr1, .usr2, .dump])
            _ = signal(SIGHUP, SIG_IGN)
            ignoreBrokenPipe()
            unblockAllSignals()
        } catch {
            report(.failed(reason: "host setup failed: \(error)"))
            ChildProcess.exitImmediately(1)
        }

        // Before any plugin file is opened: nothing of the pool's runs as the master's user.
        do {
            for notice in try PrivilegeDrop.apply(pool.privileges, pool: pool) { log.notice("\(notice)") }
        } catch {
            log.error("pool \(pool.name): cannot take on its privileges: \(error)")
            report(.failed(reason: "pool \(pool.name): cannot take on its privileges: \(error)"))
            ChildProcess.exitImmediately(1)
        }
        if getppid() != launch.masterPID { ChildProcess.exitImmediately(1) }

        let loadStarted = MonotonicInstant.now()
        let plugins: [PluginInstance]
        do {
            plugins = try PluginSet.load(pool, inherited: launch.inheritedData) { message, descriptor in
                try? ReportChannel.send(message.line, descriptor: descriptor, over: launch.reportFD)
            }
        } catch {
            log.error("\(error)")
            report(.failed(reason: error.description))
            ChildProcess.exitImmediately(1)
        }
        let loaded = MonotonicInstant.now()
        // The master may have lowered this host to idle CPU priority while it loaded
        // (background_loading): the preload is done, fork and start the workers at full speed,
        // and tell the master, which lowers it no more (and raises it again should its timer
        // have raced this). Workers forked at idle meanwhile raise themselves.
        if launch.loadsInBackground {
            try? CPUPriority.set(.normal, ofAllThreadsOf: getpid())
            report(.loaded)
        }

        // The unwinder the workers' crash and stack reports use, loaded once here rather than
        // in every worker at its start (see forklift_backtrace_warm).
        forklift_backtrace_warm()

        let summary = {
            "pool=\(pool.name) gen=\(launch.generation) pm=\(pool.processManager.rawValue) plugins=\(plugins.map(\.label).joined(separator: ","))"
                + " load_ms=\(Formatting.milliseconds(from: loadStarted, to: loaded)) ready_ms=\(Formatting.milliseconds(from: loadStarted))"
        }
        var workers: WorkerPool
        do {
            workers = try WorkerPool(launch: launch, plugins: plugins, signals: signals, workerBody: workerBody, summary: summary)
        } catch {
            report(.failed(reason: "host setup failed: \(error)"))
            ChildProcess.exitImmediately(1)
        }
        workers.run()
    }
}
