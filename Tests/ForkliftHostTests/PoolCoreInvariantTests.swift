import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

/// What must hold after any sequence of events, and the races around the start and the stop.
@Suite struct PoolCoreInvariantTests {
    /// A small deterministic generator, so that a failing sequence can be replayed.
    struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    static func settings(_ manager: ProcessManager, standby: Int = 0) -> PoolCore.Settings {
        poolSettings(manager, maxChildren: 5) {
            $0.standbyWorkers = standby
            $0.minSpareServers = 1
            $0.maxSpareServers = 3
            $0.startServers = 2
            $0.processIdleTimeout = 3
            $0.maxPrivateMemory = 100 << 20
            $0.requestSlowlogTimeout = 2
            $0.allBusyWarning = 2
        }
    }

    @Test(arguments: ProcessManager.allCases, [1, 2, 3, 42])
    func anySequenceKeepsThePoolWithinItsTargetAndNeverBusyLoops(_ manager: ProcessManager, seed: UInt64) {
        Self.runSequence(manager, seed: seed, standby: 0)
    }

    /// The same with standby workers, which take the places forks would.
    @Test(arguments: ProcessManager.allCases, [1, 2, 3, 42])
    func anySequenceWithStandbyWorkersKeepsTheSameInvariants(_ manager: ProcessManager, seed: UInt64) {
        Self.runSequence(manager, seed: seed, standby: 2)
    }

    static func runSequence(_ manager: ProcessManager, seed: UInt64, standby: Int) {
        var random = Generator(state: seed)
        var pool = PoolDriver(Self.settings(manager, standby: standby))
        // Released standbys say "serving" at a later step (case 11), or their slot shows it.
        pool.standbysSayServing = standby == 0
        pool.startServing()
        if manager == .ondemand { pool.exit(pool.forkedPIDs[0]) }
        let statuses: [(ForkliftSystem.ExitStatus, Bool)] = [(.exited(0), true), (.signaled(UnixSignal(SIGSEGV), coreDumped: false), true),
                                                           (.exited(3), false), (.exited(0), false), (.exited(1), false)]
        var broken = false
        for step in 0..<600 {
            let context = "\(manager) seed \(seed) standby \(standby) step \(step)"
            var ticked = false
            let alive = pool.alive.sorted()
            switch random.next(12) {
            case 0, 1:
                guard let deadline = pool.core.nextDeadline else { break }
                #expect(deadline > pool.now, "\(context): a deadline in the past")
                pool.now = max(pool.now, deadline)
                pool.tick()
                ticked = true
            case 2:
                pool.advance(by: Double(random.next(1500)) / 1000)
                pool.tick()
                ticked = true
            case 3 where !alive.isEmpty:
                let pid = alive[random.next(alive.count)]
                if pool.core.workers[pid]?.ready != nil { pool.set(pid, [.idle, .running, .reading][random.next(3)]) }
            case 4 where !alive.isEmpty:
                let (status, served) = statuses[random.next(statuses.count)]
                pool.exit(alive[random.next(alive.count)], status, served: served)
            case 5:
                pool.readyAll()
            case 6:
                pool.send(.connectionWaiting(pool.observation))
            case 7 where random.next(4) == 0:
                pool.scaleTarget = 1 + random.next(pool.core.settings.capacity + 2)
            case 8 where !alive.isEmpty:
                pool.privateDirty[alive[random.next(alive.count)]] = (1 + random.next(200)) << 20
            case 9 where !alive.isEmpty:
                let pid = alive[random.next(alive.count)]
                if pool.core.workers[pid]?.ready == nil {
                    pool.send(.workerInitFailed(pid: pid, reason: "worker \(pid): init failed"))
                    pool.exit(pid, .exited(3))
                }
            case 10 where !alive.isEmpty:
                // It says it leaves; its exit comes at a later step (case 4), or never before the end.
                let pid = alive[random.next(alive.count)]
                if pool.core.workers[pid]?.ready != nil { pool.send(.workerLeaving(pid: pid)) }
            case 11 where !pool.core.standbys.starting.isEmpty:
                let starting = pool.core.standbys.starting.sorted()
                pool.send(.standbyServing(pid: starting[random.next(starting.count)]))
            default:
                break
            }
            let core = pool.core
            var holds = true
            func check(_ condition: Bool, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
                #expect(condition, "\(context): \(what)", sourceLocation: sourceLocation)
                holds = holds && condition
            }
            check(core.staying.count <= core.target, "\(core.staying.count) staying, target \(core.target)")
            check(core.workers.count <= core.settings.capacity, "more workers than slots")
            check(Set(core.workers.keys).union(core.standbys.pids) == pool.alive, "the core's workers and standbys are the live processes")
            check(Set(core.workers.keys).isDisjoint(with: core.standbys.pids), "a standby that took a place is a worker only")
            check(core.standbys.pids.count <= standby, "\(core.standbys.pids.count) standbys, standby_workers \(standby)")
            check(!core.isStopping, "nothing here stops the pool")
            if ticked {
                check(core.nextDeadline.map { $0 > pool.now } == true, "the next deadline is in the future")
                if manager == .static && core.failures.consecutive == 0 && core.failures.allowsFork(now: pool.now) {
                    check(core.staying.count == core.target || core.workers.count == core.settings.capacity,
                          "a static pool is kept at its size")
                }
            }
            broken = !holds
            if broken { break } // the first broken invariant is the story; the rest is noise
        }
        if !broken { #expect(pool.history.forks.count + pool.history.releases.count > 10, "the sequence did something") }
        if !broken && standby > 0 { #expect(pool.history.releases.count > 0, "standbys took places") }
    }

    // MARK: - Races

    /// While the first workers are in their worker init (here 3 s), nothing re-arms the
    /// once-a-second tick: `nextDeadline` stays at start + 1 s, in the past, and the shell
    /// polls with a zero timeout and ticks in a tight loop until the last worker is ready.
    @Test func aSlowWorkerInitDoesNotMakeTheShellSpin() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.send(.start)
        let readyAt = PoolDriver.t0.advanced(bySeconds: 3)
        var ticks = 0
        // The shell's loop: wait for the deadline, tick, until the workers are ready.
        while let deadline = pool.core.nextDeadline, deadline < readyAt, ticks < 100 {
            pool.now = max(pool.now, deadline)
            pool.tick()
            ticks += 1
        }
        #expect(ticks <= 3, "one tick a second, not \(ticks) at \(pool.now.nanoseconds - PoolDriver.t0.nanoseconds) ns")
        #expect(pool.core.nextDeadline.map { $0 > pool.now } == true)
        pool.now = readyAt
        #expect(pool.readyAll().readyReports == 1)
    }

    /// The shell reaps two workers at once and handles both exits before the first
    /// replacement's `.forked`: a fork asked for and not yet answered is a worker already.
    @Test func twoExitsReapedTogetherAreReplacedByTwoForks() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4))
        pool.startServing()
        let (a, b) = (pool.staying[0], pool.staying[1])
        pool.answersForks = false
        let first = pool.exit(a, .exited(0), served: true)
        let second = pool.exit(b, .exited(0), served: true)
        #expect(first.forks.count == 1)
        #expect(second.forks.count == 1)
    }

    /// The shell reads a CHLD and a TERM in one go: the exit is handled first and asks for a
    /// replacement, then the stop, and only then the replacement's `.forked`. That worker was
    /// not there when the TERMs went out; nothing stops it, and the host never exits.
    @Test func aWorkerForkedJustBeforeAStopIsStoppedToo() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        let (retired, other) = (pool.staying[0], pool.staying[1])
        pool.answersForks = false
        #expect(pool.exit(retired, .exited(0), served: true).forks.first == 0)
        #expect(pool.send(.stop).terms == [other])
        let late = pool.send(.forked(pid: 5000, slot: 0))
        #expect(late.terms == [5000], "a worker forked while stopping must be told to stop")
        #expect(late.forks.isEmpty)
        var after = pool.exit(other)
        after += pool.send(.workerExited(pid: 5000, status: .exited(0), served: false, active: false))
        #expect(after.exits == [0])
    }

    /// A replacement host starts with the master's scale target in its board, below the
    /// configured size. The first tick (still during the start: worker init takes more than a
    /// second) trims the extra workers; each finishes its init, says ready and leaves (its
    /// gate sees the TERM) before the others are ready — and that exit fails the generation
    /// as if its worker init had failed.
    @Test func aScaleTargetSeenDuringTheStartDoesNotFailIt() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4))
        pool.scaleTarget = 2
        pool.send(.start)
        var actions = pool.tickAtDeadline()
        for pid in actions.terms {
            pool.ready(pid)
            actions += pool.exit(pid)
        }
        actions += pool.readyAll()
        for _ in 0..<3 {
            let more = pool.tickSeconds(1)
            actions += more
            for pid in more.terms { actions += pool.exit(pid) }
        }
        #expect(actions.reports.isEmpty, "\(actions.reports)")
        #expect(actions.readyReports == 1)
        #expect(!pool.core.isStopping)
        #expect(pool.staying.count == 2)
        #expect(pool.alive.count == 2)
    }
}
