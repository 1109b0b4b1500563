import ForkliftConfig
import ForkliftIPC
import ForkliftSystem
import Glibc

/// Everything the master decides, apart from doing it: a plain value that takes events (a
/// signal, a host's report, a child's exit, a control command, the clock) and returns
/// actions (fork a host, signal a pid, answer a client, log). `Master` is the shell that
/// waits, reads and acts; tests drive this with a mock clock, without forking anything.
///
/// Its deadlines are derived from its state (`timers`): whatever can time out is waited for
/// by the shell and acted on by `tick` from the same list, so neither can forget one.
struct MasterCore {
    enum Phase: Equatable { case starting, running, stopping }

    /// A control client, named by the shell.
    typealias ClientID = Int

    let configurationDirectory: String
    /// The configuration the live generations run.
    var configuration: Configuration
    var phase = Phase.starting
    var exitCode: Int32 = 0
    var hosts: [pid_t: HostProcess] = [:]
    var generations: [String: Int] = [:]
    var restarts = HostRestarts()
    var emergencies = EmergencyRestarts()
    /// Pools whose live host asked to be replaced (emergency restart), until a replacement starts.
    var emergencyPools: Set<String> = []
    var transaction: ReloadTransaction?
    var switchInFlight: GenerationSwitch?
    /// A reload asked for while another was in flight: run it next (it must read the files
    /// as they are then), and answer these clients from it.
    var reloadPending = false
    var pendingReloadWaiters: [ClientID] = []
    var stopWaiters: [ClientID] = []
    /// Hosts being forked: what each fork is for, until the shell reports its pid.
    var forking: [HostSpec] = []
    /// Set when this master was started by an upgrading one.
    let isHandoff: Bool
    var handoff: HandoffProgress?
    var upgrade: UpgradeInFlight?
    /// Whether the socket files, the control socket and the pid file are this master's to
    /// serve and remove. A master started by an upgrade owns them only once it serves (if it
    /// fails to start, they stay with the old master); one that upgraded owns them no more.
    var ownsFiles: Bool
    /// Whether a reload's new generation may load at idle CPU priority: only if it can be
    /// raised back (probed by the shell at start).
    var mayLoadInBackground: Bool
    /// A pool whose host drops root for its user can leave idle priority only within the
    /// RLIMIT_NICE hard limit it inherits from this master (`BackgroundLoading.allowed`):
    /// whether the master runs as root, and that limit.
    var changesUsers = false
    var niceHardLimit = UInt64.max
    var masterNice: Int32 = 0
    /// Worker counts set at run time (TTIN, TTOU, `forklift scale`), by pool, until a reload.
    var scaleTargets: [String: Int] = [:]
    /// Pools whose shared counters the shell keeps (every pool a host was forked for, until forgotten).
    var countedPools: Set<String> = []
    private(set) var exited = false
    /// Set by the shell when systemd (NOTIFY_SOCKET) or a `--daemonize` launcher listens:
    /// nil, the core says nothing of its state to anyone.
    var supervision: ServiceSupervision?

    init(configuration: Configuration, configurationDirectory: String, isHandoff: Bool = false,
         inheritedGenerations: [String: Int] = [:], mayLoadInBackground: Bool = false) {
        self.configuration = configuration
        self.configurationDirectory = configurationDirectory
        self.isHandoff = isHandoff
        self.generations = inheritedGenerations
        self.mayLoadInBackground = mayLoadInBackground
        ownsFiles = !isHandoff
        handoff = isHandoff ? HandoffProgress() : nil
    }

    // MARK: - Events and actions

    enum Event: Equatable {
        /// The shell is set up: start the first generation.
        case start
        case signal(UnixSignal)
        case control(ClientID, ControlRequest)
        /// Answer to `.readConfiguration`.
        case configurationRead(Result<Configuration, ConfigurationError>)
        /// Answers to `.acquireListeners`: the addresses opened now (others were open already).
        case listenersAcquired(opened: [ListenAddress])
        case listenersFailed(reason: String)
        /// Answers to `.forkHost`.
        case hostForked(HostSpec, pid: pid_t)
        case hostForkFailed(HostSpec, reason: String)
        case report(pid_t, HostReport)
        case hostExited(pid_t, ExitStatus)
        /// Answer to `.setPriority`.
        case priorityChanged(pid_t, BackgroundLoading.Action, error: String?)
        /// Answer to `.countWaiting`: old workers still able to be woken for a connection.
        case waitingWorkers(Int)
        /// The new master of an upgrade (this one is the old): forked, speaking, gone.
        case upgradeForked(pid: pid_t)
        case upgradeForkFailed(reason: String)
        case upgradeMessage(UpgradeMessage)
        case upgradeExited(ExitStatus)
        /// The previous master (this one is the new one of an upgrade).
        case previousMasterMessage(HandoffMessage)
        /// Time passed.
        case tick
    }

    enum Action: Equatable {
        case readConfiguration
        case acquireListeners([PoolSettings])
        case closeListeners(keeping: Set<ListenAddress>)
        /// The committed configuration's listen_owner, listen_group and listen_mode, on the
        /// unix sockets already open (a new socket gets them when it is created).
        case applySocketPermissions([PoolSettings])
        case closeOpenedListeners([ListenAddress])
        case refuseNewConnections
        case forkHost(HostSpec)
        case signal(pid_t, UnixSignal)
        case signalGroup(pid_t, UnixSignal)
        case setPriority(pid_t, BackgroundLoading.Action)
        /// Scoreboard writes: the generation may serve; it is no longer live; scale it.
        case markLive(pid_t)
        case retire(pid_t)
        case setScaleTarget(pid_t, Int)
        case countWaiting([pid_t])
        case answer(ClientID, ok: Bool, String)
        case answerStatus(ClientID, StatusQuery)
        case log(LogLevel, String)
        /// Dumps the master's state (these lines) to the log and tells every host to dump its own.
        case dump([String])
        case reopenLogs
        case applyGlobalSettings(old: GlobalSettings, new: GlobalSettings)
        /// No host of this pool is left and the configuration has it no more: unmap its counters.
        case forgetPool(String)
        case forkUpgrade
        case tellUpgrade(HandoffMessage)
        case tellPreviousMaster(UpgradeMessage)
        /// This master now owns the pid file and the control socket (an upgrade's new master).
        case takeOverFiles
        /// This master owns them no more: stop answering control clients.
        case giveUpFiles
        /// Tell systemd (and a `--daemonize` launcher) what state the service is in.
        case notifyService(ServiceSupervision.Notice)
        /// The loop ends: clean up, then answer these clients (`forklift stop` waits for it).
        case exit(Int32, answering: [ClientID])
    }

    mutating func handle(_ event: Event, now: MonotonicInstant) -> [Action] {
        guard !exited else { return [] }
        let stateBefore = serviceState
        var actions: [Action] = []
        switch event {
        case .start:
            actions += beginReload(configuration, initial: true, waiter: nil, now: now)
        case .signal(let signal):
            actions += handleSignal(signal, now: now)
        case .control(let client, let request):
            actions += handleControl(client, request, now: now)
        case .configurationRead(let result):
            actions += configurationRead(result, now: now)
        case .listenersAcquired(let opened):
            actions += listenersAcquired(opened, now: now)
        case .listenersFailed(let reason):
            actions += rollback(because: reason, now: now)
        case .hostForked(let spec, let pid):
            actions += hostForked(spec, pid: pid, now: now)
        case .hostForkFailed(let spec, let reason):
            actions += hostForkFailed(spec, reason: reason, now: now)
        case .report(let pid, let report):
            actions += handleReport(report, from: pid, now: now)
        case .hostExited(let pid, let status):
            actions += hostExited(pid, status: status, now: now)
        case .priorityChanged(let pid, let action, let error):
            actions += priorityChanged(pid, action, error: error, now: now)
        case .waitingWorkers(let count):
            actions += waitingWorkers(count, now: now)
        case .upgradeForked(let pid):
            actions += upgradeForked(pid, now: now)
        case .upgradeForkFailed(let reason):
            actions += failUpgrade("upgrade failed: \(reason)", now: now)
        case .upgradeMessage(let message):
            actions += upgradeMessage(message, now: now)
        case .upgradeExited(let status):
            actions += upgradeExited(status, now: now)
        case .previousMasterMessage(let message):
            actions += previousMasterMessage(message, now: now)
        case .tick:
            break
        }
        actions += fireTimers(now: now)
        actions += superviseTransition(from: stateBefore, now: now)
        actions += exitIfDone()
        return actions
    }

    private mutating func handleSignal(_ signal: UnixSignal, now: MonotonicInstant) -> [Action] {
        switch signal {
        case .term, .int, .quit:
            return [.log(.notice, "\(signal) received: stopping gracefully")] + beginStop(now: now)
        case .hup, .usr2:
            return [.log(.notice, "\(signal) received: reloading the configuration and plugins from disk")] + requestReload(waiter: nil)
        case .usr1:
            return [.log(.notice, "\(signal) received: reopening log files"), .reopenLogs] + hosts.keys.sorted().map { .signal($0, .usr1) }
        case .ttin, .ttou:
            return scaleEveryPool(by: signal == .ttin ? 1 : -1, cause: "\(signal)")
        case .dump:
            return [.log(.notice, "\(signal) received: dumping the state of master, hosts and workers"), .dump(dumpLines(now: now))]
        default:
            return [] // CHLD: the shell reaps on every iteration anyway
        }
    }

    /// Ends the loop once stopping and every host is gone.
    private mutating func exitIfDone() -> [Action] {
        guard phase == .stopping, hosts.isEmpty, forking.isEmpty, upgrade == nil else { return [] }
        exited = true
        let waiters = stopWaiters
        stopWaiters = []
        return [.log(.notice, "forklift master exits with status \(exitCode)"), .exit(exitCode, answering: waiters)]
    }
}
