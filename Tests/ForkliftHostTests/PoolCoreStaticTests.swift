import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

/// pm = static: the start, exits and replacements, and the back-off for workers that die
/// right after they start.
@Suite struct PoolCoreStaticTests {
    let segv = ForkliftSystem.ExitStatus.signaled(UnixSignal(SIGSEGV), coreDumped: true)

    @Test func forksMaxChildrenAtStart() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4))
        let actions = pool.send(.start)
        #expect(actions.forks == [0, 1, 2, 3])
        #expect(pool.workerPIDs == pool.forkedPIDs)
        #expect(pool.core.phase == .starting)
        #expect(actions.readyReports == 0)
        #expect(actions.reports.isEmpty)
    }

    @Test func reportsReadyOnceEveryFirstWorkerPassedWorkerInit() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4))
        pool.send(.start)
        for pid in pool.forkedPIDs.dropLast() {
            pool.advance(by: 0.1)
            #expect(pool.ready(pid).readyReports == 0, "worker \(pid) is not the last one")
            #expect(pool.core.phase == .starting)
        }
        let last = pool.ready(pool.forkedPIDs.last!)
        #expect(last.readyReports == 1)
        #expect(pool.core.phase == .serving)
        // The same line again (or a late one) reports nothing more.
        #expect(pool.send(.workerReady(pid: pool.forkedPIDs[0])).readyReports == 0)
        #expect(pool.send(.workerReady(pid: 4242)).readyReports == 0)
        #expect(pool.history.readyReports == 1)
        // Going live opens the gate, once.
        #expect(pool.send(.goLive).count(.openGate) == 1)
        #expect(pool.send(.goLive).count(.openGate) == 0)
    }

    @Test func aWorkerInitFailureDuringStartFailsTheGenerationAndStopsEverything() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 3))
        pool.send(.start)
        let pids = pool.forkedPIDs
        pool.ready(pids[0])
        let failed = pool.send(.workerInitFailed(pid: pids[1], reason: "plugin app: workerInit threw: no database"))
        #expect(failed.reports == [.failed(reason: "plugin app: workerInit threw: no database")])
        #expect(failed.logs(.error) == ["plugin app: workerInit threw: no database"])
        #expect(failed.terms.sorted() == pids)
        #expect(pool.core.isStopping)
        #expect(pool.core.nextDeadline == nil)
        // The last worker passing its init now reports nothing, and no exit is replaced.
        #expect(pool.ready(pids[2]).readyReports == 0)
        var after: [Action] = []
        after += pool.exit(pids[1], .exited(3))
        after += pool.exit(pids[0])
        #expect(after.exits.isEmpty, "a worker is left")
        after += pool.tickSeconds(3)
        after += pool.exit(pids[2])
        #expect(after.forks.isEmpty)
        #expect(after.exits == [1])
        #expect(after.reports.isEmpty, "the failure is reported once")
        #expect(pool.history.readyReports == 0)
    }

    @Test func aWorkerDyingDuringStartFailsTheGenerationWithItsStatus() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.send(.start)
        let pids = pool.forkedPIDs
        let died = pool.exit(pids[0], segv)
        #expect(died.reports.count == 1)
        guard case .failed(let reason)? = died.reports.first else { Issue.record("no failure report"); return }
        #expect(reason.contains("worker \(pids[0])"), "\(reason)")
        #expect(died.terms == [pids[1]])
        #expect(died.forks.isEmpty)
        #expect(pool.exit(pids[1]).exits == [1])
    }

    @Test func aRetiredWorkerIsReplacedAtOnce() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 4))
        pool.startServing()
        pool.advance(by: 0.3)
        let retired = pool.forkedPIDs[2]
        let actions = pool.exit(retired, .exited(0), served: true)
        #expect(actions.forks == [2], "into the slot it left")
        #expect(actions.logs(.info, containing: "retired").count == 1)
        #expect(pool.staying.count == 4)
        #expect(pool.core.failures.consecutive == 0)
    }

    @Test func aWorkerThatServedAndDiedIsReplacedAtOnceWithoutBackOff() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        for round in 0..<6 {
            pool.advance(by: 0.01)
            let pid = pool.staying[round % 2]
            pool.set(pid, .running)
            let actions = pool.exit(pid, segv, served: true, active: true)
            #expect(actions.forks.count == 1, "round \(round)")
            #expect(actions.logs(.error, containing: "in the middle of a request; replacing it").count == 1)
            #expect(pool.core.failures.consecutive == 0)
            #expect(pool.core.failures.backoffUntil == nil)
            pool.ready(pool.forkedPIDs.last!)
        }
        #expect(pool.staying.count == 2)
        #expect(pool.core.publishedState(now: pool.now).condition == .normal)
    }

    @Test func aWorkerUpASecondAfterItsInitIsProvenAndReplacedAtOnce() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 1))
        pool.startServing()
        pool.tickSeconds(1) // ready at t0, a tick at t0 + 1: proven
        #expect(pool.core.workers[pool.forkedPIDs[0]]?.proven == true)
        #expect(pool.exit(pool.forkedPIDs[0], .exited(1)).forks.count == 1)
        #expect(pool.core.failures.consecutive == 0)
    }

    @Test func workersDyingRightAfterTheyStartBackOffAndThePoolRecovers() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 1))
        pool.startServing()
        pool.advance(by: 0.5)
        // The first failed start is replaced at once.
        let first = pool.exit(pool.forkedPIDs.last!, .exited(3))
        #expect(first.forks.count == 1)
        #expect(pool.core.failures.backoffUntil == nil)

        let delays = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5]
        for (index, delay) in delays.enumerated() {
            let died = pool.now
            let due = died.advanced(bySeconds: delay)
            let death = pool.exit(pool.forkedPIDs.last!, .exited(3))
            #expect(death.forks.isEmpty, "failure \(index + 2) waits \(delay) s")
            #expect(pool.core.failures.backoffUntil == due)
            #expect(pool.core.publishedState(now: pool.now).condition == .backingOff)
            if index < 2 { #expect(pool.core.nextDeadline == due, "the back-off is the next deadline") }
            // A connection or a tick before the deadline forks nothing.
            pool.now = MonotonicInstant(nanoseconds: due.nanoseconds - 1_000_000)
            #expect(pool.tick().forks.isEmpty)
            var forkedAt: MonotonicInstant?
            for _ in 0..<10 {
                guard let deadline = pool.core.nextDeadline else { break }
                #expect(deadline <= due, "never waits past the back-off")
                if pool.tickAtDeadline().forks.count == 1 {
                    forkedAt = pool.now
                    break
                }
            }
            #expect(forkedAt == due, "delay \(delay) s")
        }
        // The one forked last stays up: a second after its init the pool is back to normal.
        let healthy = pool.forkedPIDs.last!
        pool.ready(healthy)
        let readyAt = pool.now
        var after: [Action] = []
        while pool.now < readyAt.advanced(bySeconds: 1) { after += pool.tickAtDeadline() }
        after += pool.tickSeconds(5)
        #expect(after.logs(.notice, containing: "back to normal").count == 1)
        #expect(pool.history.logs(.error).count == 2, "the first failure and the start of the back-off: \(pool.history.logs(.error))")
        #expect(pool.core.failures.consecutive == 0)
        #expect(pool.core.failures.backoffUntil == nil)
        #expect(pool.core.publishedState(now: pool.now).condition == .normal)
        // And the next failed start is replaced at once again.
        #expect(pool.exit(healthy, .exited(1)).forks.count == 1)
        #expect(pool.exit(pool.forkedPIDs.last!, .exited(3)).forks.count == 1)
    }

    @Test func aForkFailureWhileServingIsRetriedAfterADelay() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        pool.advance(by: 0.2)
        pool.answersForks = false
        let exit = pool.exit(pool.forkedPIDs[0], .exited(0), served: true)
        #expect(exit.forks == [0])
        let failed = pool.send(.forkFailed(slot: 0, reason: "EAGAIN"))
        #expect(failed.logs(.error, containing: "cannot fork").count == 1)
        #expect(!pool.core.isStopping, "serving goes on")
        #expect(pool.core.nextDeadline == pool.now.advanced(bySeconds: 0.1))
        pool.answersForks = true
        #expect(pool.tickAtDeadline().forks == [0])
        #expect(pool.staying.count == 2)
    }

    /// StartFailures: "The first healthy worker resets it." A fork failure's delay is never
    /// reset by a healthy worker, so every later fork failure (and a later crash loop) waits
    /// twice as long as the one before, up to 5 s, for the whole life of the host.
    @Test func aHealthyWorkerResetsTheDelayAfterAForkFailure() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        for round in 0..<3 {
            pool.advance(by: 30)
            pool.tick()
            pool.answersForks = false
            let pid = pool.staying[0]
            let slot = pool.slots[pid]!
            #expect(pool.exit(pid, .exited(0), served: true).forks == [slot])
            pool.send(.forkFailed(slot: slot, reason: "EAGAIN"))
            #expect(pool.core.failures.backoffUntil == pool.now.advanced(bySeconds: 0.1), "fork failure \(round + 1), a healthy pool between")
            pool.answersForks = true
            pool.tickAtDeadline()
            pool.ready(pool.forkedPIDs.last!)
            pool.tickSeconds(3) // the new worker is up and healthy
        }
    }
}
