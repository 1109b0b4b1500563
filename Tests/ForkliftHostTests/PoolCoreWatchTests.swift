import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

/// What the core watches: emergency restarts, every worker busy, slow requests, memory.
@Suite struct PoolCoreWatchTests {
    let segv = ForkliftSystem.ExitStatus.signaled(UnixSignal(SIGSEGV), coreDumped: false)

    static func emergencyRestarts(_ actions: [Action]) -> Int {
        actions.reports.filter { if case .emergencyRestart = $0 { true } else { false } }.count
    }

    func emergencyPool() -> PoolDriver {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4, global: {
            $0.emergencyRestartThreshold = 3
            $0.emergencyRestartInterval = 10
        }))
        pool.startServing()
        pool.tickSeconds(2)
        return pool
    }

    /// Kills one worker (it served, so it is replaced at once) `after` seconds of ticks.
    func kill(_ pool: inout PoolDriver, after seconds: Int, _ status: ForkliftSystem.ExitStatus) -> [Action] {
        pool.tickSeconds(seconds)
        let actions = pool.exit(pool.staying[0], status, served: true)
        pool.readyAll()
        return actions
    }

    @Test func threeDeathsBySignalWithinTheIntervalAskForOneEmergencyRestart() {
        var pool = emergencyPool()
        #expect(Self.emergencyRestarts(kill(&pool, after: 0, segv)) == 0)
        #expect(Self.emergencyRestarts(kill(&pool, after: 4, segv)) == 0)
        let third = kill(&pool, after: 4, segv)
        #expect(Self.emergencyRestarts(third) == 1)
        #expect(third.forks.count == 1, "the host keeps serving until the master replaces it")
        // The window starts afresh: one more death is not another restart.
        #expect(Self.emergencyRestarts(kill(&pool, after: 1, segv)) == 0)
        #expect(Self.emergencyRestarts(pool.history) == 1)
    }

    @Test func deathsSpreadOverMoreThanTheIntervalDoNot() {
        var pool = emergencyPool()
        for _ in 0..<8 { _ = kill(&pool, after: 6, segv) }
        #expect(Self.emergencyRestarts(pool.history) == 0)
        #expect(pool.staying.count == 4)
    }

    /// PHP-FPM counts SIGSEGV and SIGBUS; Forklift traps and aborts too, but never TERM or
    /// KILL (an operator, the OOM killer): an emergency restart re-preloads everything.
    @Test func killsAndTermsAreNoEmergency() {
        var pool = emergencyPool()
        for signal in [SIGKILL, SIGTERM, SIGKILL, SIGINT, SIGKILL] {
            _ = kill(&pool, after: 0, .signaled(UnixSignal(signal), coreDumped: false))
        }
        #expect(Self.emergencyRestarts(pool.history) == 0)
        for signal in [SIGABRT, SIGILL, SIGBUS] {
            _ = kill(&pool, after: 0, .signaled(UnixSignal(signal), coreDumped: true))
        }
        #expect(Self.emergencyRestarts(pool.history) == 1, "traps, aborts and bus errors are crashes")
    }

    @Test func exitsWithAStatusAreNoEmergency() {
        var pool = emergencyPool()
        for _ in 0..<5 { _ = kill(&pool, after: 0, .exited(70)) }
        #expect(Self.emergencyRestarts(pool.history) == 0)
    }

    // MARK: - Every worker busy

    @Test func allBusyIsLoggedOnceAfterAllBusyWarningAndFreeAgainOnce() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        pool.setAll(pool.staying, .running)
        // Seen first at the tick at t0 + 1, warned 10 s later.
        #expect(pool.tickSeconds(10).logs(.warning, containing: "have been busy").isEmpty)
        let warned = pool.tickSeconds(1).logs(.warning, containing: "have been busy")
        #expect(warned.count == 1)
        #expect(warned.first?.contains("all 2 workers have been busy for 10.0 s") == true, "\(warned)")
        #expect(pool.core.publishedState(now: pool.now).allBusySince == PoolDriver.t0.advanced(bySeconds: 1))
        #expect(pool.tickSeconds(30).logs(.warning, containing: "have been busy").isEmpty, "once per episode")
        pool.set(pool.staying[1], .idle)
        let free = pool.tickSeconds(1)
        #expect(free.logs(.notice, containing: "free again").count == 1)
        #expect(pool.core.publishedState(now: pool.now).allBusySince == nil)
        #expect(pool.tickSeconds(5).logs(.notice, containing: "free again").isEmpty)
        // A new episode is warned about again.
        pool.set(pool.staying[1], .running)
        #expect(pool.tickSeconds(12).logs(.warning, containing: "have been busy").count == 1)
    }

    @Test func aShortAllBusyEpisodeIsNotLogged() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        pool.setAll(pool.staying, .running)
        pool.tickSeconds(5)
        pool.set(pool.staying[0], .idle)
        let actions = pool.tickSeconds(20)
        #expect(actions.logs(.warning).isEmpty)
        #expect(actions.logs(.notice, containing: "free again").isEmpty, "nothing was warned")
    }

    // MARK: - Slow requests

    @Test func aSlowRequestIsCountedOnceNotOnEveryTick() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2) { $0.requestSlowlogTimeout = 5 })
        pool.startServing()
        let (a, b) = (pool.staying[0], pool.staying[1])
        pool.advance(by: 0.5)
        pool.set(a, .running) // started at t0 + 0.5
        #expect(pool.tickSeconds(4).count(.countSlowRequest) == 0, "4 s old at t0 + 4.5")
        let slow = pool.tickSeconds(1) // its deadline, t0 + 5.5, is the end of this second
        #expect(slow.count(.countSlowRequest) == 1)
        #expect(slow.logs(.warning, containing: "slow request: worker \(a)").count == 1)
        #expect(pool.tickSeconds(20).count(.countSlowRequest) == 0)
        // The next request of the same worker is another one; two at once count twice.
        pool.set(a, .idle)
        pool.tickSeconds(1)
        pool.set(a, .running)
        pool.set(b, .running)
        #expect(pool.tickSeconds(4).count(.countSlowRequest) == 0)
        #expect(pool.tickSeconds(2).count(.countSlowRequest) == 2)
        #expect(pool.tickSeconds(10).count(.countSlowRequest) == 0)
        #expect(pool.history.count(.countSlowRequest) == 3)
    }

    @Test func aShortSlowRequestBetweenTwoTicksIsSeenAndLoggedAtItsOwnMoment() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 1) { $0.requestSlowlogTimeout = 0.3 })
        pool.startServing()
        let a = pool.staying[0]
        pool.tickSeconds(1)
        pool.advance(by: 0.05)
        pool.set(a, .running) // 0.6 s long: over before the next 1 s tick
        var seenAt: Double?
        var elapsed = 0.0
        while elapsed < 0.6, let deadline = pool.core.nextDeadline {
            elapsed += pool.now.seconds(until: deadline)
            if pool.tickAtDeadline().count(.countSlowRequest) == 1 { seenAt = elapsed; break }
        }
        #expect(seenAt != nil, "the board is read every 0.13 s with a 0.3 s slowlog timeout")
        #expect((seenAt ?? 9) <= 0.3 + 0.001, "once running is seen, its deadline is its start + 0.3 s: \(seenAt ?? -1)")
    }

    @Test func aKeptConnectionIsNotASlowRequest() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 1) {
            $0.requestSlowlogTimeout = 1
            $0.requestTerminateTimeout = 2
        })
        pool.startServing()
        pool.set(pool.staying[0], .kept)
        let actions = pool.tickSeconds(10)
        #expect(actions.count(.countSlowRequest) == 0)
        #expect(actions.logs(.error).isEmpty, "nor past request_terminate_timeout")
    }

    @Test func noSlowRequestsWithoutATimeout() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 1))
        pool.startServing()
        pool.set(pool.staying[0], .running)
        #expect(pool.tickSeconds(100).count(.countSlowRequest) == 0)
    }

    // MARK: - Memory

    static let limit = 100 << 20

    @Test func memoryIsMeasuredOnceASecondWithMaxPrivateMemory() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4) { $0.maxPrivateMemory = Self.limit })
        pool.startServing()
        let measurements = pool.tickSeconds(5).measurements
        #expect(measurements.count == 5)
        #expect(measurements.allSatisfy { $0 == pool.staying })
        pool.advance(by: 0.5)
        #expect(pool.tick().measurements.isEmpty, "half a second later")
        pool.advance(by: 0.5)
        #expect(pool.tick().measurements.count == 1)
        #expect(pool.core.nextDeadline == pool.now.advanced(bySeconds: 1))
    }

    @Test func aWorkerAboveMaxPrivateMemoryIsReplacedOnlyAfterItExits() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4) { $0.maxPrivateMemory = Self.limit })
        pool.startServing()
        for pid in pool.staying { pool.privateDirty[pid] = 20 << 20 }
        pool.tickSeconds(2)
        let big = pool.staying[2]
        pool.set(big, .running)
        pool.privateDirty[big] = 150 << 20
        let over = pool.tickSeconds(1)
        #expect(over.terms == [big])
        #expect(over.forks.isEmpty, "it finishes its request first")
        #expect(over.logs(.warning, containing: "above max_private_memory").count == 1)
        #expect(over.contains(.storeMemory(slot: 2, pid: big, MemoryUsage(pss: 150 << 20, privateDirty: 150 << 20))))
        // Still running, still big: not signalled again, and nothing forked beside it.
        let still = pool.tickSeconds(3)
        #expect(still.signals.isEmpty)
        #expect(still.forks.isEmpty)
        #expect(pool.alive.count == 4)
        pool.set(big, .exiting)
        let exit = pool.exit(big, .exited(0), served: true)
        #expect(exit.forks == [2])
        #expect(exit.logs(.info, containing: "exceeding max_private_memory").count == 1)
        #expect(pool.alive.count == 4)
        #expect(pool.tickSeconds(3).signals.isEmpty)
    }

    @Test func memoryIsNotCheckedWithoutALimit() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        for pid in pool.staying { pool.privateDirty[pid] = 1 << 40 }
        let actions = pool.tickSeconds(25)
        #expect(actions.measurements.count == 3, "only the status page's sample, at 1, 11 and 21 s")
        #expect(actions.signals.isEmpty)
    }
}
