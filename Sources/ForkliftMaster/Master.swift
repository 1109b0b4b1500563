import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc
import Logging

/// The master: plugin-free, single-threaded, synchronous. It owns the listening sockets, the
/// pid file and the control socket; it starts one host per pool and generation, makes a new
/// generation live only once all of it is ready (rolling back otherwise), restarts hosts
/// that die, and stops everything the way FCGI::ProcManager does.
///
/// It never runs plugin code: the host body is handed in by the caller, and runs only in the
/// forked child.
public final class Master {
    public typealias HostBody = (HostLaunch) -> Never

    enum Phase: Equatable { case starting, running, stopping }

    let configurationDirectory: String
    var configuration: Configuration
    let hostBody: HostBody
    let log = ForkliftLogging.logger
    var phase = Phase.starting
    var exitCode: Int32 = 0
    var hosts: [pid_t: HostProcess] = [:]
    var listeners = Listeners()
    var generations: [String: Int] = [:]
    var restarts = HostRestarts()
    var transaction: ReloadTransaction?
    /// A reload asked for while another was in flight: run it next (it must read the files
    /// as they are then), and answer these clients from it.
    var reloadPending = false
    var pendingReloadWaiters: [Int32] = []
    var stopWaiters: [Int32] = []
    var signals: SignalPipe!
    var control: ControlServer?
    var scoreboard: Scoreboard!
    var slots = SlotAllocator()
    /// Set when this master was started by an upgrading one.
    let handoff: Handoff?
    var upgrade: UpgradeInFlight?
    /// Whether the socket files, the control socket and the pid file are this master's to
    /// serve and remove. A master started by an upgrade owns them only once it serves (if it
    /// fails to start, they stay with the old master); one that upgraded owns them no more.
    var ownsFiles: Bool
    let executablePath = Master.startupExecutablePath()
    /// Whether a reload's new generation may load at idle CPU priority: only if it can be
    /// raised back (`CPUPriority.probeLeavingIdle`, at start).
    var mayLoadInBackground = false

    public init(configuration: Configuration, configurationDirectory: String, handoff: Handoff? = nil, hostBody: @escaping HostBody) {
        self.configuration = configuration
        self.configurationDirectory = configurationDirectory
        self.handoff = handoff
        self.hostBody = hostBody
        ownsFiles = handoff == nil
    }

    /// Runs until stopped; returns the process exit code.
    public func run() -> Int32 {
        ProcessIdentity.current = ProcessIdentity(role: .master)
        ProcessTitle.set("forklift: master")
        let pidFile = PidFile(path: configuration.global.pidFile)
        do {
            if handoff == nil { try pidFile.write() } // else at the first commit
            scoreboard = try Scoreboard()
            // Before the signal pipe: the probe forks and reaps a child of its own. Even with
            // background_loading = 0: a reload may turn it on.
            mayLoadInBackground = CPUPriority.probeLeavingIdle()
            signals = try SignalPipe(catching: [.term, .int, .quit, .hup, .usr1, .usr2, .chld])
            ignoreBrokenPipe()
            if let handoff {
                control = ControlServer(adopting: handoff.controlFD, path: configuration.global.controlSocket)
                listeners.adopt(handoff.listeners)
                generations = handoff.generations
            } else {
                control = try ControlServer(path: configuration.global.controlSocket)
            }
        } catch {
            log.error("cannot start: \(error)")
            pidFile.remove()
            return 1
        }
        log.notice("forklift master started (pid \(getpid())), configuration from \(configuration.files.joined(separator: ", "))")
        if configuration.global.backgroundLoading > 0 && !mayLoadInBackground {
            log.notice("background_loading is off: this master may not raise a process back from idle CPU priority (that takes CAP_SYS_NICE or an RLIMIT_NICE of 20); reloads load at normal priority")
        }
        beginReload(configuration, initial: true)

        while !(phase == .stopping && hosts.isEmpty) {
            waitForEvents()
            handleSignals()
            acceptControlClients()
            readReports()
            readUpgradeStatus()
            reapHosts()
            checkTimers()
        }
        if ownsFiles {
            listeners.close(allBut: [])
            control?.close()
            pidFile.remove()
        } else {
            listeners.closeDescriptors() // the files belong to the other master
        }
        log.notice("forklift master exits with status \(exitCode)")
        for client in stopWaiters { ControlServer.answer(client, ok: exitCode == 0, "stopped, exit status \(exitCode)") }
        return exitCode
    }

    // MARK: - The loop's steps

    private func waitForEvents() {
        var fds = [signals.fileDescriptor]
        if let control, ownsFiles { fds.append(control.fd) }
        fds += hosts.values.map(\.reportFD).filter { $0 >= 0 }
        if let upgrade { fds.append(upgrade.statusFD) }
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
                log.notice("\(signal) received: reloading the configuration and plugins from disk")
                reloadFromDisk(waiter: nil)
            case .usr1:
                log.notice("\(signal) received: reopening log files")
                try? LogDestination.reopen()
                for pid in hosts.keys { ChildProcess.send(.usr1, to: pid) }
            default:
                break // CHLD: reapHosts runs on every iteration anyway
            }
        }
    }

    private func acceptControlClients() {
        // Until an upgraded master serves, the old one answers the commands.
        guard let control, ownsFiles else { return }
        while let (client, command, text) = control.accept() {
            switch command {
            case .reload:
                log.notice("reload requested through the control socket")
                reloadFromDisk(waiter: client)
            case .stop:
                log.notice("stop requested through the control socket")
                stopWaiters.append(client)
                beginStop()
            case .status:
                ControlServer.answer(client, ok: true, statusLine())
            case .upgrade:
                log.notice("binary upgrade requested through the control socket")
                beginUpgrade(waiter: client)
            case nil:
                ControlServer.answer(client, ok: false, "unknown command \"\(text)\"; expected reload, stop, status or upgrade")
            }
        }
    }

    private func readReports() {
        for pid in Array(hosts.keys) {
            guard var host = hosts[pid], host.reportFD >= 0 else { continue }
            var lines: [String] = []
            while true {
                guard let bytes = try? readAvailable(host.reportFD) else {
                    closeDescriptor(host.reportFD) // end of file: the host closed its end
                    host.reportFD = -1
                    break
                }
                if bytes.isEmpty { break }
                lines += host.reports.append(bytes)
            }
            hosts[pid] = host
            for line in lines { handleReport(HostReport(line: line), from: pid) }
        }
    }

    private func handleReport(_ report: HostReport?, from pid: pid_t) {
        guard var host = hosts[pid] else { return }
        switch report {
        case .loaded:
            // At idle priority it would serve only on CPU time nobody else wants.
            guard endBackgroundLoading(pid, because: .loaded) else {
                rollback(because: "\(host.label) could not be raised back from idle CPU priority (set background_loading = 0)")
                return
            }
        case .ready(let summary):
            host.summary = summary
            hosts[pid] = host
            log.info("\(host.label) is ready: \(summary)")
            if host.role == .replacement { goLive(pid) }
            if host.role == .candidate { commitIfReady() }
        case .failed(let reason):
            host.failure = reason
            hosts[pid] = host
            log.error("\(host.label) failed: \(reason)")
            if host.role == .candidate { rollback(because: reason) }
        case nil:
            break
        }
    }

    private func reapHosts() {
        for (pid, status) in ChildProcess.reap() {
            if pid == upgrade?.pid {
                readUpgradeStatus()
                if upgrade != nil { failUpgrade("the new master \(status) before it was ready") }
                continue
            }
            guard let host = hosts.removeValue(forKey: pid) else { continue }
            closeDescriptor(host.reportFD)
            slots.release(host.slotIndex)
            switch host.role {
            case .draining:
                log.info("\(host.label) \(status): drained")
            case .candidate:
                if transaction?.candidates.values.contains(pid) == true {
                    rollback(because: host.failure ?? "the host of \(host.label) \(status) before it was ready")
                }
            case .replacement:
                let delay = restarts.failed(pool: host.pool.name)
                log.error("\(host.label) \(status) before it was ready; trying again in \(delay) s")
            case .live:
                let delay = restarts.failed(pool: host.pool.name)
                log.error("\(host.label) \(status); starting a new host in \(delay) s")
            }
        }
    }

    private func checkTimers() {
        let now = MonotonicInstant.now()
        updateLoadingPriorities(now: now)
        if let transaction, now >= transaction.deadline {
            rollback(because: "the new generation was not ready within reload_timeout (\(Formatting.seconds(transaction.configuration.global.reloadTimeout)))")
        }
        for (pid, host) in hosts where host.role == .replacement {
            // A replacement that never becomes ready would make its pool look served for good.
            guard host.started.advanced(bySeconds: configuration.global.reloadTimeout) <= now else { continue }
            log.error("\(host.label) was not ready within reload_timeout (\(Formatting.seconds(configuration.global.reloadTimeout))): killing it")
            ChildProcess.send(.kill, toGroup: pid)
            hosts[pid]?.role = .draining(deadline: nil)
        }
        for (pid, host) in hosts {
            guard case .draining(let deadline?) = host.role, now >= deadline else { continue }
            log.error("\(host.label) still busy after die_timeout (\(Formatting.seconds(configuration.global.dieTimeout))): killing it and its workers")
            ChildProcess.send(.kill, toGroup: pid)
            hosts[pid]?.role = .draining(deadline: nil)
            if phase == .stopping { exitCode = 1 }
        }
        guard phase == .running else { return }
        for pool in configuration.pools where !isCovered(pool.name) && restarts.isDue(pool: pool.name, now: now) {
            restarts.attempted(pool: pool.name)
            _ = startHost(pool, role: .replacement)
        }
    }

    /// Is a host serving this pool, or starting to replace one that died? A reload's
    /// candidate does not count: gated until its commit, it serves nobody meanwhile.
    private func isCovered(_ pool: String) -> Bool {
        hosts.values.contains { $0.pool.name == pool && ($0.role == .live || $0.role == .replacement) }
    }

    private func nextTimer() -> MonotonicInstant? {
        var times = hosts.values.compactMap { host -> MonotonicInstant? in
            if case .draining(let deadline) = host.role { return deadline }
            return nil
        }
        if let transaction { times.append(transaction.deadline) }
        times += loadingPriorityDeadlines
        // Only restarts that checkTimers would act on: a due time of a covered pool stays in
        // the past and would make every poll return at once.
        if phase == .running {
            let uncovered = configuration.pools.map(\.name).filter { !isCovered($0) }
            if let due = restarts.nextDue(among: uncovered) { times.append(due) }
        }
        return times.min()
    }

    /// "memory: Pss 93.1 MiB in all, Private_Dirty at most 0.4 MiB per worker"
    func memorySummary(host: pid_t) -> String {
        let workers = ProcessTree.children(of: host)
        let usages = workers.compactMap { MemoryUsage.of($0) }
        let total = usages.reduce(MemoryUsage.of(host) ?? MemoryUsage(), +)
        let mostPrivate = usages.map(\.privateDirty).max() ?? 0
        return "memory: Pss \(Formatting.mebibytes(total.pss)) in all, Private_Dirty at most \(Formatting.mebibytes(mostPrivate)) per worker (\(usages.count) workers)"
    }

    func statusLine() -> String {
        let parts = hosts.values.sorted { ($0.pool.name, $0.generation) < ($1.pool.name, $1.generation) }.map { host -> String in
            let role: String
            switch host.role {
            case .candidate: role = host.backgroundLoading?.isIdle == true ? "candidate (loading at idle CPU priority)" : "candidate"
            case .replacement: role = "starting"
            case .live: role = "live"
            case .draining: role = "draining"
            }
            return "pool \(host.pool.name) gen \(host.generation) \(role) pid \(host.pid)" + (host.summary.map { " \($0)" } ?? "")
                + " " + memorySummary(host: host.pid)
        }
        return parts.isEmpty ? "no hosts" : parts.joined(separator: "; ")
    }
}
