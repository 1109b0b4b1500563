import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

typealias CoreAction = MasterCore.Action
typealias CoreEvent = MasterCore.Event
/// swift-testing has an `ExitStatus` of its own.
typealias HostExit = ForkliftSystem.ExitStatus

/// Configurations built in code, as `ConfigurationLoader` would return them.
enum CoreFixture {
    static let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)

    static func pool(_ name: String, maxChildren: Int = 4) -> PoolSettings {
        PoolSettings(name: name, listen: .unix(path: "/srv/forklift/run/\(name).sock"), maxChildren: maxChildren,
                     plugins: [PluginSettings(name: "hello", path: "/srv/forklift/plugins/\(name).so", route: "/")])
    }

    static func configuration(_ pools: [String] = ["www"], maxChildren: Int = 4, reloadTimeout: Double = 60,
                              dieTimeout: Double = 60, backgroundLoading: Double = 30) -> Configuration {
        configuration(pools.map { pool($0, maxChildren: maxChildren) }, reloadTimeout: reloadTimeout,
                      dieTimeout: dieTimeout, backgroundLoading: backgroundLoading)
    }

    static func configuration(_ pools: [PoolSettings], reloadTimeout: Double = 60, dieTimeout: Double = 60,
                              backgroundLoading: Double = 30) -> Configuration {
        let global = GlobalSettings(prefix: "/srv/forklift", pidFile: "/srv/forklift/forklift.pid", dieTimeout: dieTimeout,
                                    reloadTimeout: reloadTimeout, backgroundLoading: backgroundLoading)
        return Configuration(global: global, pools: pools, files: ["/srv/forklift/conf.d/forklift.toml"])
    }
}

/// Drives a `MasterCore` the way `Master` does: every action that the shell answers is
/// answered with an event, queued and handled in order before anything else happens; the
/// clock only moves when a test says so. Every action is kept, and every handled event is
/// checked against the core's invariants.
struct CoreDriver {
    var core: MasterCore
    var now = CoreFixture.t0
    /// Every action the core returned, in order.
    private(set) var history: [CoreAction] = []
    /// Every host forked, in order, with its fake pid.
    private(set) var forks: [(spec: HostSpec, pid: pid_t)] = []
    /// The sockets the shell holds open.
    private(set) var openListeners: Set<ListenAddress> = []

    // How the fake shell answers.
    /// What the configuration files say: the answer to `.readConfiguration`.
    var disk: Result<Configuration, ConfigurationError>
    /// If set, `.acquireListeners` fails with this reason.
    var listenFailure: String?
    /// A reason to fail a fork, or nil to fork it.
    var forkFailure: (HostSpec) -> String? = { _ in nil }
    /// Answers to `.countWaiting`, first to last; once used up, `waitingDefault` (nil: no answer).
    var waitingCounts: [Int] = []
    var waitingDefault: Int? = 0
    /// An error for a priority change, or nil for success.
    var priorityError: (pid_t, BackgroundLoading.Action) -> String? = { _, _ in nil }
    /// If set, `.forkUpgrade` fails with this reason; else the new master is `upgradePID`.
    var upgradeForkFailure: String?
    let upgradePID: pid_t = 9000

    private var nextPID: pid_t = 101
    private var queue: [CoreEvent] = []

    init(_ configuration: Configuration = CoreFixture.configuration(), isHandoff: Bool = false,
         inheritedGenerations: [String: Int] = [:], mayLoadInBackground: Bool = false) {
        core = MasterCore(configuration: configuration, configurationDirectory: "/srv/forklift/conf.d", isHandoff: isHandoff,
                          inheritedGenerations: inheritedGenerations, mayLoadInBackground: mayLoadInBackground)
        disk = .success(configuration)
    }

    /// A master that started and serves every pool of `configuration` (each pool's host is ready).
    static func running(_ configuration: Configuration = CoreFixture.configuration(), mayLoadInBackground: Bool = false,
                        sourceLocation: SourceLocation = #_sourceLocation) -> CoreDriver {
        var driver = CoreDriver(configuration, mayLoadInBackground: mayLoadInBackground)
        driver.send(.start, sourceLocation: sourceLocation)
        for fork in driver.forks { driver.ready(fork.pid, sourceLocation: sourceLocation) }
        #expect(driver.core.phase == .running, sourceLocation: sourceLocation)
        return driver
    }

    // MARK: - Events

    /// Handles `event`, then the answers to its actions (and theirs), like the shell's queue.
    /// Returns every action of that cascade.
    @discardableResult
    mutating func send(_ event: CoreEvent, sourceLocation: SourceLocation = #_sourceLocation) -> [CoreAction] {
        queue.append(event)
        var produced: [CoreAction] = []
        while !queue.isEmpty {
            let next = queue.removeFirst()
            let upgradeBefore = core.upgrade?.pid
            let actions = core.handle(next, now: now)
            checkInvariants(actions, after: next, upgradeBefore: upgradeBefore, sourceLocation: sourceLocation)
            produced += actions
            for action in actions { answer(action) }
        }
        history += produced
        return produced
    }

    /// Moves the clock by `seconds` as the shell's poll would: it wakes at every deadline the
    /// core advertises on the way (and only then) with a `.tick`, and once more at the end.
    @discardableResult
    mutating func advance(by seconds: Double, sourceLocation: SourceLocation = #_sourceLocation) -> [CoreAction] {
        let target = now.advanced(bySeconds: seconds)
        var produced: [CoreAction] = []
        var wakeUps = 0
        while !core.exited, let next = core.nextDeadline, next <= target {
            wakeUps += 1
            if wakeUps > 100_000 {
                Issue.record("the core keeps waking the shell: more than 100000 deadlines", sourceLocation: sourceLocation)
                break
            }
            now = Swift.max(now, next)
            produced += send(.tick, sourceLocation: sourceLocation)
        }
        now = target
        produced += send(.tick, sourceLocation: sourceLocation)
        return produced
    }

    /// Sleeps until the core's next deadline (which must exist), then ticks.
    @discardableResult
    mutating func advanceToNextDeadline(sourceLocation: SourceLocation = #_sourceLocation) -> [CoreAction] {
        guard let next = core.nextDeadline else {
            Issue.record("the core advertises no deadline", sourceLocation: sourceLocation)
            return []
        }
        now = next
        return send(.tick, sourceLocation: sourceLocation)
    }

    @discardableResult
    mutating func ready(_ pid: pid_t, sourceLocation: SourceLocation = #_sourceLocation) -> [CoreAction] {
        send(.report(pid, .ready(summary: "pid=\(pid) workers=4 load_ms=3.0")), sourceLocation: sourceLocation)
    }

    @discardableResult
    mutating func exit(_ pid: pid_t, _ status: HostExit = .exited(0), sourceLocation: SourceLocation = #_sourceLocation) -> [CoreAction] {
        send(.hostExited(pid, status), sourceLocation: sourceLocation)
    }

    /// A reload from the files, by HUP (client nil) or `forklift reload`.
    @discardableResult
    mutating func reload(to configuration: Configuration? = nil, client: MasterCore.ClientID? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation) -> [CoreAction] {
        if let configuration { disk = .success(configuration) }
        return send(client.map { .control($0, .reload) } ?? .signal(.hup), sourceLocation: sourceLocation)
    }

    // MARK: - Looking

    /// The pid of the host forked last for `pool`.
    func lastFork(_ pool: String) -> pid_t? { forks.last { $0.spec.pool.name == pool }?.pid }
    func spec(of pid: pid_t) -> HostSpec? { forks.first { $0.pid == pid }?.spec }
    func role(_ pid: pid_t) -> HostProcess.Role? { core.hosts[pid]?.role }
    func live(_ pool: String) -> [pid_t] {
        core.hosts.values.filter { $0.pool.name == pool && $0.role == .live }.map(\.pid).sorted()
    }

    // MARK: - The fake shell

    private mutating func answer(_ action: CoreAction) {
        switch action {
        case .readConfiguration:
            queue.append(.configurationRead(disk))
        case .acquireListeners(let pools):
            if let listenFailure {
                queue.append(.listenersFailed(reason: listenFailure))
                return
            }
            var opened: [ListenAddress] = []
            for pool in pools {
                for address in [pool.listen] + (pool.statusListen.map { [$0] } ?? []) where !openListeners.contains(address) {
                    openListeners.insert(address)
                    opened.append(address)
                }
            }
            queue.append(.listenersAcquired(opened: opened))
        case .closeListeners(let keeping):
            openListeners.formIntersection(keeping)
        case .closeOpenedListeners(let addresses):
            openListeners.subtract(addresses)
        case .forkHost(let spec):
            if let reason = forkFailure(spec) {
                queue.append(.hostForkFailed(spec, reason: reason))
            } else {
                let pid = nextPID
                nextPID += 1
                forks.append((spec, pid))
                queue.append(.hostForked(spec, pid: pid))
            }
        case .setPriority(let pid, let change):
            queue.append(.priorityChanged(pid, change, error: priorityError(pid, change)))
        case .countWaiting:
            let count = waitingCounts.isEmpty ? waitingDefault : waitingCounts.removeFirst()
            if let count { queue.append(.waitingWorkers(count)) }
        case .forkUpgrade:
            queue.append(upgradeForkFailure.map { .upgradeForkFailed(reason: $0) } ?? .upgradeForked(pid: upgradePID))
        default:
            break
        }
    }

    /// No busy loop: once an event (a `.tick` included) is handled at `now`, nothing the core
    /// waits for is due any more. No stranger: every pid an action names is a host the core
    /// still tracks, or the new master of its upgrade.
    func checkInvariants(_ actions: [CoreAction], after event: CoreEvent, upgradeBefore: pid_t?,
                         sourceLocation: SourceLocation) {
        var known = Set(core.hosts.keys)
        if let upgradeBefore { known.insert(upgradeBefore) }
        if let pid = core.upgrade?.pid { known.insert(pid) }
        if case .upgradeForked(let pid) = event { known.insert(pid) } // it was just told of it
        for action in actions {
            for pid in action.pids where !known.contains(pid) {
                Issue.record("\(action), after \(event), names pid \(pid), which the core does not know", sourceLocation: sourceLocation)
            }
        }
        if !core.exited, let deadline = core.nextDeadline, deadline <= now {
            let due = core.timers().filter { $0.at <= now }.map { "\($0.timer)" }
            Issue.record("after \(event) the next deadline is not in the future (busy loop): \(due)", sourceLocation: sourceLocation)
        }
    }
}

extension MasterCore.Action {
    /// The processes this action signals or writes about.
    var pids: [pid_t] {
        switch self {
        case .signal(let pid, _), .signalGroup(let pid, _), .setPriority(let pid, _), .markLive(let pid),
             .retire(let pid), .setScaleTarget(let pid, _):
            [pid]
        case .countWaiting(let pids):
            pids
        default:
            []
        }
    }

    var isLog: Bool {
        if case .log = self { return true }
        return false
    }
}

extension Array where Element == MasterCore.Action {
    /// Everything but the log lines.
    var effects: [MasterCore.Action] { filter { !$0.isLog } }

    func messages(_ level: LogLevel) -> [String] {
        compactMap { if case .log(level, let message) = $0 { message } else { nil } }
    }

    func logged(_ level: LogLevel, _ fragment: String) -> Bool {
        messages(level).contains { $0.contains(fragment) }
    }

    func count(of action: MasterCore.Action) -> Int { filter { $0 == action }.count }

    /// Whether `first` comes before `second` (both present).
    func order(_ first: MasterCore.Action, before second: MasterCore.Action) -> Bool {
        guard let a = firstIndex(of: first), let b = firstIndex(of: second) else { return false }
        return a < b
    }

    var forkedSpecs: [HostSpec] { compactMap { if case .forkHost(let spec) = $0 { spec } else { nil } } }

    var answers: [CoreAnswer] {
        compactMap { if case .answer(let client, let ok, let text) = $0 { CoreAnswer(client: client, ok: ok, text: text) } else { nil } }
    }

    /// The exit codes of `.exit` actions, and the clients each answers.
    var exitCodes: [Int32] { compactMap { if case .exit(let code, _) = $0 { code } else { nil } } }
    var exitAnswering: [[MasterCore.ClientID]] { compactMap { if case .exit(_, let clients) = $0 { clients } else { nil } } }
}

struct CoreAnswer: Equatable {
    let client: MasterCore.ClientID
    let ok: Bool
    let text: String
}

extension MonotonicInstant {
    func plus(_ seconds: Double) -> MonotonicInstant { advanced(bySeconds: seconds) }
}
