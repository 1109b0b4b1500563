import ForkliftConfig
@testable import ForkliftHost
@testable import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

typealias Action = PoolCore.Action

/// `PoolCore.Settings` for tests, built from the configuration types as the host builds them.
func poolSettings(_ manager: ProcessManager, maxChildren: Int, _ configure: (inout PoolSettings) -> Void = { _ in },
                  global configureGlobal: (inout GlobalSettings) -> Void = { _ in }) -> PoolCore.Settings {
    var pool = PoolSettings(name: "www", listen: .unix(path: "/tmp/www.sock"), maxChildren: maxChildren, plugins: [])
    pool.processManager = manager
    configure(&pool)
    var global = GlobalSettings(prefix: "/tmp", pidFile: "/tmp/forklift.pid")
    configureGlobal(&global)
    return PoolCore.Settings(pool: pool, global: global, generation: 1, capacity: PoolCore.capacity(for: pool))
}

/// Plays the shell around a `PoolCore` with a mock clock: answers `.fork` with fake pids and
/// `.measureMemory` with made-up numbers, keeps a fake scoreboard the tests write worker
/// states into, and collects every action.
struct PoolDriver {
    static let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)

    var core: PoolCore
    var now: MonotonicInstant
    /// The scoreboard, by slot, as the workers would have written it.
    var board: [Int: WorkerRecord] = [:]
    var scaleTarget = 0
    var listenQueue: Int?
    /// Private_Dirty bytes per pid, for the answers to `.measureMemory`.
    var privateDirty: [pid_t: Int] = [:]
    /// Whether `.fork` actions are answered with `.forked` at once (as the shell does).
    var answersForks = true
    /// Whether a released standby says "serving" at once.
    var standbysSayServing = true
    private(set) var history: [Action] = []
    /// Every pid forked, in order.
    private(set) var forkedPIDs: [pid_t] = []
    /// Every standby forked, in order.
    private(set) var standbyPIDs: [pid_t] = []
    /// Workers forked and not yet reaped.
    private(set) var alive: Set<pid_t> = []
    private(set) var slots: [pid_t: Int] = [:]
    private var nextPID: pid_t = 1000

    init(_ settings: PoolCore.Settings, now: MonotonicInstant = PoolDriver.t0) {
        core = PoolCore(settings: settings, hostPID: 1, now: now)
        self.now = now
    }

    var observation: Observation { Observation(records: board, listenQueue: listenQueue, scaleTarget: scaleTarget) }

    /// Handles the event and whatever events its actions produce, as the shell's pending queue does.
    @discardableResult
    mutating func send(_ event: PoolCore.Event) -> [Action] {
        var queue = [event]
        var all: [Action] = []
        while !queue.isEmpty {
            let next = queue.removeFirst()
            for action in core.handle(next, now: now) {
                all.append(action)
                switch action {
                case .fork(let slot) where answersForks:
                    nextPID += 1
                    let pid = nextPID
                    forkedPIDs.append(pid)
                    alive.insert(pid)
                    slots[pid] = slot
                    board[slot] = Self.record(slot: slot, pid: pid, state: .starting, since: now)
                    queue.append(.forked(pid: pid, slot: slot))
                case .forkStandby where answersForks:
                    nextPID += 1
                    let pid = nextPID
                    standbyPIDs.append(pid)
                    alive.insert(pid)
                    queue.append(.standbyForked(pid: pid))
                case .releaseStandby(let pid, let slot):
                    // It claims the slot and goes to accept, as the worker does.
                    slots[pid] = slot
                    board[slot] = Self.record(slot: slot, pid: pid, state: .idle, since: now)
                    if standbysSayServing { queue.append(.standbyServing(pid: pid)) }
                case .measureMemory(let pids):
                    var usages: [pid_t: MemoryUsage] = [:]
                    for pid in pids { usages[pid] = MemoryUsage(pss: privateDirty[pid] ?? 0, privateDirty: privateDirty[pid] ?? 0) }
                    queue.append(.memoryMeasured(host: nil, workers: usages, at: now))
                default:
                    break
                }
            }
        }
        history += all
        return all
    }

    // MARK: - Time

    mutating func advance(by seconds: Double) { now = now.advanced(bySeconds: seconds) }

    @discardableResult
    mutating func tick() -> [Action] { send(.tick(observation)) }

    /// Moves the clock to the core's next deadline and ticks there, as the shell does.
    @discardableResult
    mutating func tickAtDeadline(sourceLocation: SourceLocation = #_sourceLocation) -> [Action] {
        guard let deadline = core.nextDeadline else {
            Issue.record("no deadline", sourceLocation: sourceLocation)
            return []
        }
        #expect(deadline > now, "a deadline at or before now is a busy loop", sourceLocation: sourceLocation)
        now = max(now, deadline)
        return tick()
    }

    /// Ticks once a second, `count` times (a deadline between is ticked as well).
    @discardableResult
    mutating func tickSeconds(_ count: Int) -> [Action] {
        var all: [Action] = []
        for _ in 0..<count {
            let second = now.advanced(bySeconds: 1)
            while let deadline = core.nextDeadline, deadline < second, deadline > now {
                now = deadline
                all += tick()
            }
            now = second
            all += tick()
        }
        return all
    }

    // MARK: - Workers

    /// `.start`, every first worker ready (and idle), and, unless told otherwise, live.
    @discardableResult
    mutating func startServing(live: Bool = true) -> [Action] {
        var all = send(.start)
        for pid in forkedPIDs where alive.contains(pid) { all += ready(pid) }
        if live { all += send(.goLive) }
        return all
    }

    @discardableResult
    mutating func ready(_ pid: pid_t) -> [Action] {
        set(pid, .idle)
        return send(.workerReady(pid: pid))
    }

    /// Every worker still in worker init passes it.
    @discardableResult
    mutating func readyAll() -> [Action] {
        var all: [Action] = []
        for pid in alive.sorted() where core.workers[pid]?.ready == nil { all += ready(pid) }
        return all
    }

    /// The worker's slot now says `state`, since `since` (default: now).
    mutating func set(_ pid: pid_t, _ state: WorkerState, since: MonotonicInstant? = nil, requests: Int? = nil) {
        guard let slot = slots[pid], var record = board[slot], record.pid == pid else { return }
        let since = since ?? now
        let wasActive = record.state.isActive
        record.state = state
        record.stateSince = since
        if state.isActive && !wasActive {
            record.requestStarted = since
            record.requests += 1
        }
        if let requests { record.requests = requests }
        board[slot] = record
    }

    mutating func setAll(_ pids: [pid_t], _ state: WorkerState) { for pid in pids { set(pid, state) } }

    /// The shell reaped it: its slot is free.
    @discardableResult
    mutating func exit(_ pid: pid_t, _ status: ForkliftSystem.ExitStatus = .exited(0), served: Bool = false, active: Bool = false) -> [Action] {
        if let slot = slots[pid], board[slot]?.pid == pid { board[slot] = nil }
        alive.remove(pid)
        return send(.workerExited(pid: pid, status: status, served: served, active: active))
    }

    /// Workers the core keeps (not told to leave for good), by pid.
    var staying: [pid_t] { core.staying.map(\.pid).sorted() }
    var workerPIDs: [pid_t] { core.workers.keys.sorted() }

    static func record(slot: Int, pid: pid_t, state: WorkerState, since: MonotonicInstant) -> WorkerRecord {
        WorkerRecord(slot: slot, pid: pid, state: state, spawned: since, stateSince: since, heartbeat: since, requests: 0,
                     requestStarted: since, contentLength: 0, lastDuration: 0, lastCPU: 0, lastStatus: 0, maxRSSKB: 0,
                     method: "GET", uri: "/slow", plugin: "app", memory: nil)
    }
}

// MARK: - Reading actions

extension Array where Element == Action {
    var forks: [Int] { compactMap { if case .fork(let slot) = $0 { slot } else { nil } } }
    var standbyForks: Int { count(.forkStandby) }
    /// (pid, slot) of every standby released into a slot.
    var releases: [(pid: pid_t, slot: Int)] { compactMap { if case .releaseStandby(let pid, let slot) = $0 { (pid, slot) } else { nil } } }
    var terms: [pid_t] { compactMap { if case .signal(let pid, .term) = $0 { pid } else { nil } } }
    var signals: [pid_t] { compactMap { if case .signal(let pid, _) = $0 { pid } else { nil } } }
    var reports: [HostReport] { compactMap { if case .report(let report) = $0 { report } else { nil } } }
    var exits: [Int32] { compactMap { if case .exit(let status) = $0 { status } else { nil } } }
    var measurements: [[pid_t]] { compactMap { if case .measureMemory(let pids) = $0 { pids } else { nil } } }
    func logs(_ level: LogLevel) -> [String] { compactMap { if case .log(level, let line) = $0 { line } else { nil } } }
    func logs(_ level: LogLevel, containing text: String) -> [String] { logs(level).filter { $0.contains(text) } }
    func count(_ action: Action) -> Int { filter { $0 == action }.count }
    var readyReports: Int { count(.reportReady) }
}
