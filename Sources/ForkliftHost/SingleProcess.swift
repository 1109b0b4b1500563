import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import ForkliftWorker
import Glibc

/// `forklift run --single-process`: one process loads the pool's plugins, runs their
/// preload and worker init, and serves requests itself, one at a time, in the foreground
/// (FCGI::ProcManager with n_processes below 1). No master, no host, no fork: a plugin author
/// runs it under gdb or lldb and sets breakpoints in the handler. Stop it with INT (Ctrl-C),
/// TERM or QUIT; there is no reload.
public enum SingleProcess {
    public static func run(_ configuration: Configuration, pool name: String?) -> Int32 {
        let log = ForkliftLogging.logger
        guard let pool = name.map({ name in configuration.pools.first { $0.name == name } }) ?? configuration.pools.first else {
            let names = configuration.pools.map(\.name).joined(separator: ", ")
            log.error(name.map { "single process: no pool \($0) in the configuration (pools: \(names.isEmpty ? "none" : names))" }
                ?? "single process: the configuration has no pool")
            return 1
        }
        if configuration.pools.count > 1 && name == nil {
            log.notice("single process: serving pool \(pool.name) only (of \(configuration.pools.count); --pool chooses)")
        }
        ProcessIdentity.current = ProcessIdentity(role: .worker, pool: pool.name, generation: 1)
        ProcessTitle.set("forklift: single process pool=\(pool.name)")
        do {
            let listener: Int32
            switch pool.listen {
            case .unix(let path): listener = try Listener.unix(path: path, backlog: pool.listenBacklog, permissions: pool.socketPermissions.file)
            case .tcp(let host, let port): listener = try Listener.tcp(host: host, port: port, backlog: pool.listenBacklog)
            }
            let board = try GenerationBoard(capacity: 1)
            board.markLive()
            // From the files themselves: a debugger reads their symbols by path.
            let plugins = try PluginSet.load(pool, privateCopies: false)
            let launch = WorkerLaunch(pool: pool, generation: 1, listenFD: listener, plugins: plugins, requestLimit: 0, readyFD: -1,
                                      hostPID: getppid(), gateFD: -1, board: board, slot: board.slot(0), counters: try PoolCounters())
            let ignored = [pool.maxRequests > 0 ? "max_requests" : nil, pool.requestTerminateTimeout > 0 ? "request_terminate_timeout" : nil,
                           pool.requestSlowlogTimeout > 0 ? "request_slowlog_timeout" : nil].compactMap { $0 }
            let notApplied = ignored.isEmpty ? "" : "; not applied here: \(ignored.joined(separator: ", "))"
            log.notice("forklift is serving pool \(pool.name) in a single process (pid \(getpid())) on \(pool.listen)\(notApplied); stop with Ctrl-C")
            let status = Worker.serveInThisProcess(launch)
            if case .unix(let path) = pool.listen { unlink(path) }
            return status
        } catch {
            log.error("single process: \(error)")
            return 1
        }
    }
}
