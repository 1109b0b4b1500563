import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

/// pm = ondemand: a probe at start, then workers as connections come, gone when idle.
@Suite struct PoolCoreOndemandTests {
    static func settings(maxChildren: Int = 4, maxRequests: Int = 0) -> PoolCore.Settings {
        poolSettings(.ondemand, maxChildren: maxChildren) {
            $0.processIdleTimeout = 10
            $0.maxRequests = maxRequests
        }
    }

    /// Started, live, and the probe gone.
    static func serving(_ settings: PoolCore.Settings = Self.settings()) -> PoolDriver {
        var pool = PoolDriver(settings)
        pool.startServing()
        pool.exit(pool.forkedPIDs[0])
        return pool
    }

    @Test func startsWithAProbeThatLeavesOnceReadyAndIsNotReplaced() {
        var pool = PoolDriver(Self.settings())
        let start = pool.send(.start)
        #expect(start.forks == [0], "one probe, whatever max_children")
        let probe = pool.forkedPIDs[0]
        let ready = pool.ready(probe)
        #expect(ready.terms == [probe])
        #expect(ready.readyReports == 1)
        #expect(!pool.core.watchesListener(now: pool.now), "not live yet")
        pool.send(.goLive)
        let gone = pool.exit(probe)
        #expect(gone.forks.isEmpty)
        #expect(gone.logs(.debug, containing: "proved worker init").count == 1)
        #expect(pool.core.workers.isEmpty)
        let later = pool.tickSeconds(30)
        #expect(later.forks.isEmpty)
        #expect(later.signals.isEmpty)
        #expect(pool.core.workers.isEmpty)
    }

    @Test func watchesTheListenerWhenLiveWithNoWorkerToTakeAConnection() {
        var pool = Self.serving()
        #expect(pool.core.watchesListener(now: pool.now))
        // A busy worker cannot take it either.
        pool.send(.connectionWaiting(pool.observation))
        pool.ready(pool.forkedPIDs.last!)
        pool.set(pool.forkedPIDs.last!, .running)
        pool.advance(by: 0.1)
        pool.tick()
        #expect(pool.core.watchesListener(now: pool.now))
    }

    @Test func aWaitingConnectionForksOneWorkerAndQuietsTheListener() {
        var pool = Self.serving()
        let first = pool.send(.connectionWaiting(pool.observation))
        #expect(first.forks.count == 1)
        #expect(!pool.core.watchesListener(now: pool.now))
        let quietUntil = pool.now.advanced(bySeconds: PoolCore.listenerQuietPeriod)
        #expect(pool.core.nextDeadline == quietUntil)
        // The listener is still readable while that worker starts: nothing more is forked.
        pool.advance(by: 0.001)
        let second = pool.send(.connectionWaiting(pool.observation))
        #expect(second.forks.isEmpty)
        #expect(!pool.core.watchesListener(now: pool.now))
        #expect(pool.core.nextDeadline == pool.now.advanced(bySeconds: PoolCore.listenerQuietPeriod))
        // Once the quiet period is over, it looks again; still nothing while the worker is idle.
        #expect(pool.tickAtDeadline().forks.isEmpty)
        #expect(pool.core.watchesListener(now: pool.now))
        pool.ready(pool.forkedPIDs.last!)
        #expect(pool.send(.connectionWaiting(pool.observation)).forks.isEmpty)
        #expect(!pool.core.watchesListener(now: pool.now))
        // The worker took it and is busy: the next connection gets a worker of its own.
        pool.set(pool.forkedPIDs.last!, .running)
        pool.advance(by: 0.01)
        #expect(pool.send(.connectionWaiting(pool.observation)).forks.count == 1)
        #expect(pool.core.workers.count == 2)
    }

    @Test func atMaxChildrenAWaitingConnectionForksNothingAndIsCountedOnce() {
        var pool = Self.serving(Self.settings(maxChildren: 2))
        for _ in 0..<2 {
            pool.send(.connectionWaiting(pool.observation))
            pool.readyAll()
            pool.setAll(pool.staying, .running)
            pool.advance(by: 0.01)
        }
        #expect(pool.staying.count == 2)
        #expect(!pool.core.watchesListener(now: pool.now), "nothing could be forked")
        var actions: [Action] = []
        for _ in 0..<5 {
            actions += pool.send(.connectionWaiting(pool.observation))
            pool.advance(by: 0.01)
        }
        #expect(actions.forks.isEmpty)
        #expect(actions.count(.countMaxChildrenReached) == 1)
    }

    @Test func aWorkerIdleLongerThanTheTimeoutLeavesOnePerSecond() {
        var pool = Self.serving()
        for _ in 0..<3 {
            pool.send(.connectionWaiting(pool.observation))
            pool.readyAll()
            pool.setAll(pool.staying, .running)
            pool.advance(by: 0.01)
        }
        let pids = pool.staying
        #expect(pids.count == 3)
        let idleSince = pool.now
        let order = [pids[1], pids[2], pids[0]]
        for (index, pid) in order.enumerated() { pool.set(pid, .idle, since: idleSince.advanced(bySeconds: 0.2 * Double(index))) }
        var termed: [(pid_t, Double)] = []
        for _ in 0..<16 {
            let actions = pool.tickSeconds(1)
            #expect(actions.terms.count <= 1)
            #expect(actions.forks.isEmpty)
            termed += actions.terms.map { ($0, idleSince.seconds(until: pool.now)) }
            for pid in actions.terms { pool.exit(pid) }
        }
        #expect(termed.map(\.0) == order, "longest idle first")
        #expect(termed.allSatisfy { $0.1 >= 10 }, "\(termed)")
        #expect(termed.first.map { $0.1 < 11 } == true, "\(termed)")
        #expect(pool.core.workers.isEmpty)
        #expect(pool.history.logs(.info, containing: "left after being idle").count == 3)
        #expect(pool.core.watchesListener(now: pool.now))
    }

    @Test func aWorkerIdleBelowTheTimeoutStays() {
        var pool = Self.serving()
        pool.send(.connectionWaiting(pool.observation))
        pool.ready(pool.forkedPIDs.last!)
        let actions = pool.tickSeconds(9)
        #expect(actions.signals.isEmpty)
        // It served a request: idle again from then.
        pool.set(pool.forkedPIDs.last!, .running)
        pool.tickSeconds(1)
        pool.set(pool.forkedPIDs.last!, .idle)
        #expect(pool.tickSeconds(9).signals.isEmpty)
        #expect(pool.tickSeconds(2).terms == [pool.forkedPIDs.last!])
    }

    /// Post-fork mode: every worker serves one request and exits 0; PHP-FPM forks the
    /// replacement at once, and the pool keeps answering.
    @Test func postForkModeKeepsWorking() {
        var pool = Self.serving(Self.settings(maxRequests: 1))
        #expect(pool.send(.connectionWaiting(pool.observation)).forks.count == 1)
        for request in 0..<6 {
            let pid = pool.forkedPIDs.last!
            pool.ready(pid)
            pool.set(pid, .running)
            pool.advance(by: 0.05)
            pool.set(pid, .exiting)
            let exit = pool.exit(pid, .exited(0), served: true)
            #expect(exit.forks.count == 1, "request \(request): replaced")
            #expect(pool.core.workers.count == 1)
            // The replacement is starting: it takes the next connection, nothing else is forked.
            pool.advance(by: 0.01)
            #expect(pool.send(.connectionWaiting(pool.observation)).forks.isEmpty)
            pool.advance(by: 0.01)
            pool.tick()
        }
        #expect(pool.core.failures.consecutive == 0)
        // The last replacement, never used, leaves after process_idle_timeout and is not replaced.
        pool.ready(pool.forkedPIDs.last!)
        let idle = pool.tickSeconds(12)
        #expect(idle.terms == [pool.forkedPIDs.last!])
        #expect(pool.exit(pool.forkedPIDs.last!).forks.isEmpty)
        #expect(pool.core.workers.isEmpty)
    }

    @Test func aStopWithNoWorkerLeftExitsAtOnce() {
        var pool = Self.serving()
        let stop = pool.send(.stop)
        #expect(stop.exits == [0])
        #expect(pool.core.nextDeadline == nil)
        #expect(!pool.core.watchesListener(now: pool.now))
    }
}
