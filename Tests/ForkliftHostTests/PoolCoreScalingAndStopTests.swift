import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

/// The master's scaling target, and stopping.
@Suite struct PoolCoreScalingAndStopTests {
    // MARK: - Scaling

    @Test func aStaticPoolScaledUpForksTheDifference() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4))
        pool.startServing()
        pool.scaleTarget = 6
        let up = pool.tickSeconds(1)
        #expect(up.forks == [4, 5])
        #expect(up.logs(.notice, containing: "scaled from 4 to 6 workers").count == 1)
        #expect(pool.core.target == 6)
        #expect(pool.core.publishedState(now: pool.now).workerTarget == 6)
        // The same target on later ticks changes nothing.
        pool.readyAll()
        let later = pool.tickSeconds(5)
        #expect(later.forks.isEmpty)
        #expect(later.logs(.notice, containing: "scaled").isEmpty)
    }

    @Test func aStaticPoolScaledDownStopsIdleWorkersFirstAndDoesNotReplaceThem() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 6))
        pool.startServing()
        let pids = pool.staying
        pool.setAll(Array(pids.prefix(3)), .running)
        pool.scaleTarget = 2
        let down = pool.tickSeconds(1)
        #expect(down.terms.count == 4)
        #expect(Set(down.terms.prefix(3)) == Set(pids.suffix(3)), "the idle ones")
        #expect(down.terms.last == pids[0], "then a busy one, which finishes its request")
        #expect(pool.core.target == 2)
        #expect(pool.staying == [pids[1], pids[2]])
        var exits: [Action] = []
        for pid in down.terms { exits += pool.exit(pid, .exited(0), served: true) }
        #expect(exits.forks.isEmpty)
        #expect(exits.logs(.info, containing: "scaled down to 2").count == 4)
        #expect(pool.tickSeconds(5).forks.isEmpty)
        #expect(pool.core.workers.count == 2)
    }

    @Test func theScaleTargetIsClampedToTheBoardsCapacity() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 3))
        pool.startServing()
        pool.scaleTarget = 100
        #expect(pool.tickSeconds(1).forks.count == 3, "up to capacity, 2 x max_children")
        #expect(pool.core.target == 6)
        pool.scaleTarget = 0
        #expect(pool.tickSeconds(2).signals.isEmpty, "0 is no target")
        #expect(pool.core.target == 6)
    }

    @Test func scalingMovesTheCeilingOfADynamicPool() {
        var pool = PoolDriver(poolSettings(.dynamic, maxChildren: 8) {
            $0.minSpareServers = 2
            $0.maxSpareServers = 4
            $0.startServers = 4
        })
        pool.startServing()
        pool.set(pool.staying[0], .running)
        pool.scaleTarget = 2
        let down = pool.tickSeconds(1)
        #expect(down.terms.count == 2)
        #expect(!down.terms.contains(pool.forkedPIDs[0]), "idle ones first")
        #expect(pool.core.target == 2)
        // Everything busy now: max_children is 2.
        pool.setAll(pool.staying, .running)
        #expect(pool.tickSeconds(3).forks.isEmpty)
    }

    // MARK: - Stopping

    @Test func stopTerminatesEveryWorkerAndExitsOnceTheLastOneLeft() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 3))
        pool.startServing()
        pool.set(pool.staying[1], .running)
        let pids = pool.staying
        let stop = pool.send(.stop)
        #expect(stop.terms == pids)
        #expect(pool.core.isStopping)
        #expect(pool.core.nextDeadline == nil)
        #expect(!pool.core.watchesListener(now: pool.now))
        #expect(pool.core.publishedState(now: pool.now).condition == .stopping)
        #expect(pool.send(.stop).signals.isEmpty, "once")
        var after: [Action] = []
        after += pool.exit(pids[0])
        after += pool.tick()
        after += pool.exit(pids[2], .signaled(.term, coreDumped: false))
        #expect(after.exits.isEmpty)
        #expect(pool.core.nextDeadline == nil)
        pool.advance(by: 3)
        after += pool.tick()
        after += pool.exit(pids[1], .exited(0), served: true, active: false)
        #expect(after.forks.isEmpty)
        #expect(after.exits == [0])
        #expect(after.reports.isEmpty)
        #expect(after.count(.openGate) == 0)
    }

    @Test func stopDuringStartExitsWithZeroAndReportsNothing() {
        var pool = PoolDriver(poolSettings(.dynamic, maxChildren: 4) {
            $0.minSpareServers = 1
            $0.maxSpareServers = 2
            $0.startServers = 2
        })
        pool.send(.start)
        let stop = pool.send(.stop)
        #expect(stop.terms == pool.forkedPIDs)
        var after: [Action] = []
        for pid in pool.forkedPIDs { after += pool.exit(pid) }
        #expect(after.exits == [0])
        #expect(pool.history.reports.isEmpty)
        #expect(pool.history.readyReports == 0)
    }
}
