import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc
import Logging

/// The master: plugin-free, single-threaded, synchronous. It owns the listening sockets and
/// the pid file, starts one host per pool, restarts hosts that die, and stops everything the
/// way FCGI::ProcManager does.
///
/// It never runs plugin code: the host body is handed in by the caller, and runs only in the
/// forked child.
public final class Master {
    public typealias HostBody = (HostLaunch) -> Never

    enum Phase: Equatable {
        case starting, running
        case stopping(deadline: MonotonicInstant?)
    }

    let configuration: Configuration
    let hostBody: HostBody
    let log = ForkliftLogging.logger
    var phase = Phase.starting
    var exitCode: Int32 = 0
    var hosts: [pid_t: HostProcess] = [:]
    var listeners = Listeners()
    var generations: [String: Int] = [:]
    var restarts = HostRestarts()
    var signals: SignalPipe!

    public init(configuration: Configuration, hostBody: @escaping HostBody) {
        self.configuration = configuration
        self.hostBody = hostBody
    }

    /// Runs until stopped; returns the process exit code.
    public func run() -> Int32 {
        ProcessIdentity.current = ProcessIdentity(role: .master)
        ProcessTitle.set("forklift: master")
        let pidFile = PidFile(path: configuration.global.pidFile)
        do {
            try pidFile.write()
            signals = try SignalPipe(catching: [.term, .int, .quit, .hup, .usr1, .usr2, .chld])
            ignoreBrokenPipe()
            for pool in configuration.pools {
                let (_, address) = try listeners.open(pool)
                log.notice("pool \(pool.name) listening on \(address)")
            }
        } catch {
            log.error("cannot start: \(error)")
            listeners.closeAll()
            pidFile.remove()
            return 1
        }
        log.notice("forklift master started (pid \(getpid())), configuration from \(configuration.files.joined(separator: ", "))")
        for pool in configuration.pools { startHost(pool) }

        while true {
            if case .stopping = phase, hosts.isEmpty { break }
            waitForEvents()
            handleSignals()
            readReports()
            reapHosts()
            checkTimers()
        }
        listeners.closeAll()
        pidFile.remove()
        log.notice("forklift master exits with status \(exitCode)")
        return exitCode
    }

    // MARK: - The loop's steps

    private func waitForEvents() {
        var fds = [signals.fileDescriptor]
        fds += hosts.values.map(\.reportFD).filter { $0 >= 0 }
        let timeout = nextTimer().map { MonotonicInstant.now().seconds(until: $0) }
        _ = try? waitReadable(fds, timeoutSeconds: timeout)
    }

    private func handleSignals() {
        for signal in signals.drain() {
            switch signal {
            case .term, .int, .quit:
                log.notice("\(signal) received: stopping gracefully")
                beginStop()
            case .hup, .usr2:
                log.warning("\(signal) received: reloading is not supported yet; nothing changes")
            case .usr1:
                log.notice("\(signal) received: reopening log files")
                try? LogDestination.reopen()
                for pid in hosts.keys { ChildProcess.send(.usr1, to: pid) }
            default:
                break // CHLD: reapHosts runs on every iteration anyway
            }
        }
    }

    private func readReports() {
        for pid in Array(hosts.keys) {
            guard var host = hosts[pid], host.reportFD >= 0 else { continue }
            while true {
                guard let bytes = try? readAvailable(host.reportFD) else {
                    closeDescriptor(host.reportFD) // end of file: the host closed its end
                    host.reportFD = -1
                    break
                }
                if bytes.isEmpty { break }
                for line in host.reports.append(bytes) {
                    handleReport(HostReport(line: line), from: &host)
                }
            }
            hosts[pid] = host
        }
    }

    private func handleReport(_ report: HostReport?, from host: inout HostProcess) {
        switch report {
        case .ready(let summary):
            host.state = .ready
            restarts.succeeded(pool: host.pool.name)
            log.notice("\(host.label) is ready: \(summary)")
            if phase == .starting, hosts.values.allSatisfy({ $0.pid == host.pid || $0.state == .ready }) {
                phase = .running
                log.notice("forklift is ready: \(hosts.count) pool(s) serving")
            }
        case .failed(let reason):
            host.failure = reason
            log.error("\(host.label) failed: \(reason)")
            if phase == .starting {
                exitCode = 1
                log.error("forklift refuses to start: \(reason)")
                beginStop()
            }
        case nil:
            break
        }
    }

    private func reapHosts() {
        for (pid, status) in ChildProcess.reap() {
            guard let host = hosts.removeValue(forKey: pid) else { continue }
            closeDescriptor(host.reportFD)
            switch phase {
            case .stopping:
                log.info("\(host.label) \(status)")
            case .starting where host.state == .starting:
                exitCode = 1
                if host.failure == nil {
                    log.error("forklift refuses to start: \(host.label) \(status) before it was ready")
                }
                beginStop()
            case .starting, .running:
                let delay = restarts.failed(pool: host.pool.name)
                log.error("\(host.label) \(status); starting a new host in \(delay) s")
            }
        }
    }

    private func checkTimers() {
        let now = MonotonicInstant.now()
        if case .stopping(let deadline?) = phase, now >= deadline, !hosts.isEmpty {
            log.error("die_timeout (\(configuration.global.dieTimeout) s) expired: killing \(hosts.count) host(s) and their workers")
            for host in hosts.values { ChildProcess.send(.kill, toGroup: host.pid) }
            exitCode = 1
            phase = .stopping(deadline: nil)
        }
        guard phase == .running || phase == .starting else { return }
        for pool in configuration.pools where !hosts.values.contains(where: { $0.pool.name == pool.name }) {
            if restarts.isDue(pool: pool.name, now: now) {
                restarts.attempted(pool: pool.name)
                startHost(pool)
            }
        }
    }

    private func nextTimer() -> MonotonicInstant? {
        if case .stopping(let deadline) = phase { return deadline }
        return restarts.nextDue()
    }

    // MARK: - Actions

    private func startHost(_ pool: PoolSettings) {
        let generation = (generations[pool.name] ?? 0) + 1
        generations[pool.name] = generation
        do {
            let reportPipe = try Pipe(nonBlocking: false)
            try setNonBlocking(reportPipe.readEnd)
            let launch = HostLaunch(global: configuration.global, pool: pool, generation: generation,
                                    listenFD: listeners.byPool[pool.name]!, reportFD: reportPipe.writeEnd, masterPID: getpid())
            let signals = self.signals!
            let body = hostBody
            let pid = try ChildProcess.spawn(prepareChild: {
                signals.reset()
                closeDescriptor(reportPipe.readEnd)
            }, { body(launch) })
            closeDescriptor(reportPipe.writeEnd)
            hosts[pid] = HostProcess(pool: pool, generation: generation, pid: pid, reportFD: reportPipe.readEnd)
            log.info("started host pid \(pid) for pool \(pool.name) gen \(generation)")
        } catch {
            let delay = restarts.failed(pool: pool.name)
            log.error("cannot start a host for pool \(pool.name): \(error); retrying in \(delay) s")
        }
    }

    /// Graceful stop: TERM every host (each TERMs its workers: idle ones leave now, busy ones
    /// finish their request); after die_timeout the survivors get KILL.
    private func beginStop() {
        if case .stopping = phase { return }
        let timeout = configuration.global.dieTimeout
        phase = .stopping(deadline: timeout > 0 ? MonotonicInstant.now().advanced(bySeconds: timeout) : nil)
        for pid in hosts.keys { ChildProcess.send(.term, to: pid) }
    }
}
