import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

/// pm = dynamic: PHP-FPM's idle server maintenance, once a second.
@Suite struct PoolCoreDynamicTests {
    /// min 2 / max 4 spare, max_children 8, start 3.
    static func settings(minSpare: Int = 2, maxSpare: Int = 4, maxChildren: Int = 8, start: Int = 3) -> PoolCore.Settings {
        poolSettings(.dynamic, maxChildren: maxChildren) {
            $0.minSpareServers = minSpare
            $0.maxSpareServers = maxSpare
            $0.startServers = start
        }
    }

    /// Every worker that is up passes its init and is busy at once.
    static func allBusy(_ pool: inout PoolDriver) {
        pool.readyAll()
        pool.setAll(pool.staying, .running)
    }

    @Test func forksStartServersAtStart() {
        var pool = PoolDriver(Self.settings())
        let actions = pool.send(.start)
        #expect(actions.forks == [0, 1, 2])
        #expect(pool.core.target == 8, "the ceiling")
    }

    @Test func theSpawnRateDoublesEachSecondUpToTheDeficitAndMaxChildren() {
        var pool = PoolDriver(Self.settings(minSpare: 6, maxSpare: 8, maxChildren: 12))
        pool.startServing()
        var perSecond: [Int] = []
        for _ in 0..<6 {
            Self.allBusy(&pool)
            perSecond.append(pool.tickSeconds(1).forks.count)
        }
        // 1, 2, 4, then 8 capped at max_children (12 - 10), then nothing: the pool is full.
        #expect(perSecond == [1, 2, 4, 2, 0, 0])
        #expect(pool.staying.count == 12)
        #expect(pool.core.spawnRate == 1, "back to 1 at max_children")
        #expect(pool.history.logs(.warning, containing: "seems busy").count == 1, "forking 8 at once is worth a line")
    }

    @Test func forksAreCappedByTheMinSpareDeficit() {
        var pool = PoolDriver(Self.settings())
        pool.startServing()
        var perSecond: [Int] = []
        for _ in 0..<4 {
            Self.allBusy(&pool)
            perSecond.append(pool.tickSeconds(1).forks.count)
        }
        // Rate 1, 2, 4, ... but never more than min_spare (2) idle short, nor past 8 workers.
        #expect(perSecond == [1, 2, 2, 0])
        #expect(pool.staying.count == 8)
    }

    @Test func workersInInitCountAsSpare() {
        var pool = PoolDriver(Self.settings())
        pool.startServing()
        pool.setAll(pool.staying, .running)
        #expect(pool.tickSeconds(1).forks.count == 1)
        // The new one is still in its init: one more is needed, not two.
        #expect(pool.tickSeconds(1).forks.count == 1)
        #expect(pool.tickSeconds(1).forks.isEmpty, "two starting workers are two spares")
    }

    @Test func afterABurstOneIdleWorkerLeavesPerSecondLongestIdleFirstThenNoFlapping() {
        var pool = PoolDriver(Self.settings())
        pool.startServing()
        for _ in 0..<3 {
            Self.allBusy(&pool)
            pool.tickSeconds(1)
        }
        Self.allBusy(&pool)
        let pids = pool.staying
        #expect(pids.count == 8)
        // The burst is over: all idle, each since a different moment.
        let idleOrder = [pids[5], pids[2], pids[7], pids[0], pids[3], pids[6], pids[1], pids[4]]
        for (index, pid) in idleOrder.enumerated() {
            pool.set(pid, .idle, since: pool.now.advanced(bySeconds: Double(index) * 0.01))
        }
        pool.advance(by: 0.1)
        var termed: [pid_t] = []
        for second in 0..<4 {
            let actions = pool.tickSeconds(1)
            #expect(actions.terms.count == 1, "second \(second): one per second")
            #expect(actions.forks.isEmpty)
            termed += actions.terms
            // It leaves (exit 0) one second in three right away, else a little later.
            if second % 2 == 0, let pid = actions.terms.first { #expect(pool.exit(pid).forks.isEmpty, "not replaced") }
        }
        #expect(termed == Array(idleOrder.prefix(4)))
        for pid in termed where pool.alive.contains(pid) { #expect(pool.exit(pid).forks.isEmpty) }
        #expect(pool.staying.count == 4)
        // Four idle: within min and max spare. Nothing more, however long.
        let later = pool.tickSeconds(60)
        #expect(later.forks.isEmpty)
        #expect(later.signals.isEmpty)
        #expect(pool.staying == idleOrder.suffix(4).sorted())
    }

    @Test func oneSpareShortForksOne() {
        var pool = PoolDriver(Self.settings())
        pool.startServing()
        // Three idle: nothing to do. Two of them get busy: one spare, one short of min.
        #expect(pool.tickSeconds(2).forks.isEmpty)
        pool.setAll(Array(pool.staying.prefix(2)), .running)
        #expect(pool.tickSeconds(1).forks.count == 1)
        pool.readyAll()
        #expect(pool.tickSeconds(5).forks.isEmpty)
    }

    @Test func maxChildrenReachedIsCountedOncePerEpisode() {
        var pool = PoolDriver(Self.settings())
        pool.startServing()
        for _ in 0..<3 {
            Self.allBusy(&pool)
            pool.tickSeconds(1)
        }
        Self.allBusy(&pool)
        pool.listenQueue = 5
        let full = pool.tickSeconds(10)
        #expect(full.count(.countMaxChildrenReached) == 1)
        #expect(full.logs(.warning, containing: "max_children (8)").count == 1)
        #expect(full.forks.isEmpty)
        // At the ceiling the episode lasts while no fork is possible, a worker free again or
        // not (PHP-FPM's warn_max_children): nothing is counted every second.
        pool.set(pool.staying[0], .idle)
        #expect(pool.tickSeconds(5).count(.countMaxChildrenReached) == 0)
        pool.set(pool.staying[0], .running)
        #expect(pool.tickSeconds(5).count(.countMaxChildrenReached) == 0)
        #expect(pool.history.count(.countMaxChildrenReached) == 1)
    }

    /// The bug this guards: at the ceiling with one idle worker (below min_spare_servers) and
    /// no connection waiting, "max children reached" was counted and warned every second.
    @Test func wantingSparesAtTheCeilingIsOneEpisode() {
        var pool = PoolDriver(Self.settings(minSpare: 2, maxSpare: 3, maxChildren: 4, start: 2))
        pool.startServing()
        for _ in 0..<4 {
            Self.allBusy(&pool)
            pool.tickSeconds(1)
        }
        #expect(pool.staying.count == 4)
        pool.readyAll()
        pool.setAll(Array(pool.staying.prefix(3)), .running)
        pool.set(pool.staying[3], .idle)
        let later = pool.tickSeconds(10)
        #expect(later.count(.countMaxChildrenReached) <= 1, "once per episode, not once a second")
        #expect(later.logs(.warning, containing: "max_children").count <= 1)
    }

    @Test func aRetiredWorkerIsReplacedAtOnce() {
        var pool = PoolDriver(Self.settings())
        pool.startServing()
        let pids = pool.staying
        pool.set(pids[0], .running)
        pool.advance(by: 0.2)
        let actions = pool.exit(pids[0], .exited(0), served: true)
        #expect(actions.forks.count == 1)
        #expect(actions.logs(.info, containing: "retired").count == 1)
        #expect(pool.staying.count == 3)
    }

    @Test func anIdleWorkerToldToLeaveIsNotReplaced() {
        var pool = PoolDriver(Self.settings(minSpare: 1, maxSpare: 2))
        pool.startServing()
        let first = pool.tickSeconds(1)
        #expect(first.terms.count == 1, "three idle, two at most")
        let left = pool.exit(first.terms[0])
        #expect(left.forks.isEmpty)
        #expect(left.logs(.info, containing: "left after being idle").count == 1)
        #expect(pool.tickSeconds(10).forks.isEmpty)
        #expect(pool.staying.count == 2)
    }
}
