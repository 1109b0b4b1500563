import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc
import Logging

/// The master: plugin-free, single-threaded, synchronous. It owns the listening sockets,
/// the pid file, the control socket, the scoreboards and the parked idle kept connections; it starts one host per pool and
/// generation, and stops everything the way FCGI::ProcManager does.
///
/// This is the shell around `MasterCore`, which decides everything: the loop only waits in
/// one poll, turns what it reads into events, and carries out the actions the core returns.
///
/// It never runs plugin code: the host body is handed in by the caller, and runs only in the
/// forked child.
public final class Master {
    public typealias HostBody = (HostLaunch) -> Never

    var core: MasterCore
    let hostBody: HostBody
    let log = ForkliftLogging.logger
    let handoff: Handoff?
    /// The control socket and pid file of this master's start: they stay until it exits,
    /// whatever a reload reads, so no reload may listen there.
    let held: RunningMaster
    var signals: SignalPipe!
    var control: ControlServer?
    var listeners = Listeners()
    /// Idle kept connections workers parked here (see `ParkingChannel`).
    var parked = ParkedConnections()
    /// Stopping: parked connections are closed at once.
    var refusingParked = false
    /// The parked connections the current poll watches.
    var parkedPolled: [Int32] = []
    /// The new master of an upgrade said it takes parked connections over.
    var upgradeTakesParking = false
    /// Handed over: the parking channels are the new master's to read.
    var parkingHandedOver = false
    var lastParkingWarning: MonotonicInstant?
    /// Each host's report pipe (read end) and what it has sent of its current line.
    var reports: [pid_t: (fd: Int32, lines: LineBuffer)] = [:]
    /// Each host's scoreboard, and each pool's counters.
    var boards: [pid_t: GenerationBoard] = [:]
    var counters: [String: PoolCounters] = [:]
    /// Keyed data the pools' plugins built, kept for later generations, and the master's
    /// descriptor of each (a sealed memfd, never mapped here).
    var dataSets = SharedDataSets()
    var dataDescriptors: [Int: Int32] = [:]
    /// The old master's end of the channel to the new one, during an upgrade.
    var upgradeChannel: (fd: Int32, lines: LineBuffer)?
    var upgradePID: pid_t?
    /// The new master's end of the channel to the old one.
    var handoffChannel: (fd: Int32, lines: LineBuffer)?
    /// Events that actions produced (a fork's pid, a configuration read), handled before waiting again.
    var pending: [MasterCore.Event] = []
    var exitStatus: Int32?
    let executablePath = Master.startupExecutablePath()
    /// systemd's notify socket and variables (see `Master+Supervision`), when it supervises us.
    var systemd: SystemdNotifier?
    var systemdEnvironment: SystemdEnvironment?
    var lastServiceStatus: String?
    var systemdFailureLogged = false
    /// `--daemonize`: the pipe the launching process reads "ready PID" or "failed REASON" from.
    public var readinessFD: Int32?

    /// Refuses a configuration (at start, and at every reload) whose workers would run as root.
    let rootPolicy: RootPolicy

    public init(configuration: Configuration, configurationDirectory: String, rootPolicy: RootPolicy, handoff: Handoff? = nil,
                hostBody: @escaping HostBody) {
        self.rootPolicy = rootPolicy
        core = MasterCore(configuration: configuration, configurationDirectory: configurationDirectory, isHandoff: handoff != nil,
                          inheritedGenerations: handoff?.generations ?? [:])
        self.handoff = handoff
        self.hostBody = hostBody
        held = RunningMaster(controlSocket: configuration.global.controlSocket, pidFile: configuration.global.pidFile)
    }

    var configuration: Configuration { core.configuration }

    /// Runs until stopped; returns the process exit code.
    public func run() -> Int32 {
        ProcessIdentity.current = ProcessIdentity(role: .master)
        ProcessTitle.set("forklift: master")
        let pidFile = PidFile(path: configuration.global.pidFile)
        setUpSupervision()
        do {
            if handoff == nil { try pidFile.write() } // else once it serves
            // Before the signal pipe: the probe forks and reaps a child of its own. Even with
            // background_loading = 0: a reload may turn it on.
            core.mayLoadInBackground = CPUPriority.probeLeavingIdle()
            core.changesUsers = geteuid() == 0
            var niceLimit = rlimit()
            if getrlimit(__rlimit_resource_t(__RLIMIT_NICE.rawValue), &niceLimit) == 0 { core.niceHardLimit = UInt64(niceLimit.rlim_max) }
            errno = 0
            let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            if errno == 0 { core.masterNice = nice }
            signals = try SignalPipe(catching: [.term, .int, .quit, .hup, .usr1, .usr2, .chld, .ttin, .ttou, .dump])
            ignoreBrokenPipe()
            if let handoff {
                control = ControlServer(adopting: handoff.controlFD, path: configuration.global.controlSocket)
                listeners.adopt(handoff.listeners, parking: handoff.parking, activated: handoff.activated)
                adoptData(handoff.data)
                try setNonBlocking(handoff.channelFD)
                try? setCloseOnExec(handoff.channelFD)
                handoffChannel = (handoff.channelFD, LineBuffer())
            } else {
                control = try ControlServer(path: configuration.global.controlSocket)
                // Before the first generation asks for its sockets: systemd's are taken, not bound again.
                for line in listeners.adoptActivated(SocketActivation.take(), pools: configuration.pools) { log.log(line.level, "\(line.message)") }
            }
        } catch {
            log.error("cannot start: \(error)")
            tellLauncher("failed \(error)")
            if handoff == nil { pidFile.remove() }
            return 1
        }
        log.notice("forklift master started (pid \(getpid())), configuration from \(configuration.files.joined(separator: ", "))")
        if configuration.global.backgroundLoading > 0 && !core.mayLoadInBackground {
            log.notice("background_loading is off: this master may not raise a process back from idle CPU priority (that takes CAP_SYS_NICE or an RLIMIT_NICE of 20); reloads load at normal priority")
        }
        pending.append(.start)
        while true {
            while !pending.isEmpty {
                let event = pending.removeFirst()
                for action in core.handle(event, now: .now()) { perform(action) }
                if let exitStatus { return exitStatus }
            }
            waitAndRead()
            pending.append(.tick)
        }
    }

    /// The one place the master waits: signals, the control socket and its clients, the
    /// hosts' reports, the upgrade channel, and the next deadline of the core or of a client.
    private func waitAndRead() {
        var requests = [PollRequest(fd: signals.fileDescriptor, readable: true)]
        requests += control?.pollRequests(listening: core.ownsFiles) ?? []
        requests += reports.values.map { PollRequest(fd: $0.fd, readable: true) }
        if let upgradeChannel { requests.append(PollRequest(fd: upgradeChannel.fd, readable: true)) }
        if let handoffChannel { requests.append(PollRequest(fd: handoffChannel.fd, readable: true)) }
        requests += parkingPollRequests()
        let now = MonotonicInstant.now()
        let deadline = [core.nextDeadline, control?.nextDeadline, parked.nextDeadline].compactMap { $0 }.min()
        let ready = (try? waitForEvents(requests, timeoutSeconds: deadline.map { now.seconds(until: $0) })) ?? [:]

        for signal in signals.drain() { pending.append(.signal(signal)) }
        if var server = control {
            for (client, line) in server.service(ready, now: .now()) { pending.append(.control(client, ControlRequest(line: line))) }
            control = server
        }
        readReports(ready)
        readChannels(ready)
        serviceParking(ready)
        reapChildren()
    }

    private func readReports(_ ready: [Int32: PollResult]) {
        for pid in reports.keys.sorted() {
            guard let report = reports[pid], ready[report.fd] != nil else { continue }
            // At most 64 messages per host and wake: a host that floods its channel cannot keep
            // the master from the rest of its loop (what is left is read at the next wake).
            for _ in 0..<64 {
                guard receiveReport(from: pid) else { break }
            }
        }
    }

    /// Reads one message of host `pid`'s report channel into events. False when none was
    /// queued, or at its end (then the channel is closed and forgotten).
    @discardableResult
    func receiveReport(from pid: pid_t) -> Bool {
        guard var report = reports[pid] else { return false }
        guard let message = try? ReportChannel.receive(from: report.fd) else {
            closeDescriptor(report.fd) // end of stream: the host closed its end
            reports[pid] = nil
            return false
        }
        if message.bytes.isEmpty { return false }
        var descriptor = message.descriptor
        for line in report.lines.append(message.bytes) {
            guard let parsed = HostReport(line: line) else { continue }
            if case .dataBuilt = parsed {
                receiveData(parsed, descriptor: descriptor, from: pid)
                descriptor = nil
            } else if case .dataUnused = parsed {
                receiveData(parsed, descriptor: nil, from: pid)
            } else {
                pending.append(.report(pid, parsed))
            }
        }
        closeDescriptor(descriptor ?? -1) // a descriptor no line claimed is not ours to keep
        reports[pid] = report
        return true
    }

    private func readChannels(_ ready: [Int32: PollResult]) {
        if var channel = upgradeChannel, ready[channel.fd] != nil {
            let (lines, closed) = readLines(&channel)
            upgradeChannel = closed ? nil : channel
            for line in lines {
                if line.hasPrefix("ready") { upgradeTakesParking = line.split(separator: " ").contains("parking") }
                if let message = UpgradeMessage(line: line) { pending.append(.upgradeMessage(message)) }
            }
            if closed {
                closeDescriptor(channel.fd)
                pending.append(.upgradeMessage(.closed))
            }
        }
        if var channel = handoffChannel, ready[channel.fd] != nil {
            let (lines, closed) = readLines(&channel)
            handoffChannel = closed ? nil : channel
            for line in lines { if let message = HandoffMessage(line: line) { pending.append(.previousMasterMessage(message)) } }
            if closed {
                closeDescriptor(channel.fd)
                pending.append(.previousMasterMessage(.closed))
            }
        }
    }

    private func readLines(_ channel: inout (fd: Int32, lines: LineBuffer)) -> ([String], closed: Bool) {
        var lines: [String] = []
        while true {
            guard let bytes = try? readAvailable(channel.fd) else { return (lines, true) }
            if bytes.isEmpty { return (lines, false) }
            lines += channel.lines.append(bytes)
        }
    }

    private func reapChildren() {
        for (pid, status) in ChildProcess.reap() {
            if pid == upgradePID {
                upgradePID = nil
                pending.append(.upgradeExited(status))
                continue
            }
            // Reports it sent before it exited come first (a failure's reason).
            while receiveReport(from: pid) {}
            if let report = reports.removeValue(forKey: pid) { closeDescriptor(report.fd) }
            releaseData(dataSets.hostExited(pid))
            boards.removeValue(forKey: pid)?.mapping.unmap()
            pending.append(.hostExited(pid, status))
        }
    }
}
