import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

/// standby_workers: workers forked ahead, past worker init, that take the next place the
/// pool would fork a worker for, with nothing forked on the way.
@Suite struct PoolCoreStandbyTests {
    static func settings(_ manager: ProcessManager = .static, maxChildren: Int = 2, standby: Int = 1) -> PoolCore.Settings {
        poolSettings(manager, maxChildren: maxChildren) {
            $0.standbyWorkers = standby
            $0.processIdleTimeout = 10
        }
    }

    /// Serving, live, with its standby past worker init.
    static func serving(_ settings: PoolCore.Settings = Self.settings()) -> PoolDriver {
        var pool = PoolDriver(settings)
        pool.startServing()
        for pid in pool.standbyPIDs { pool.ready(pid) }
        return pool
    }

    @Test func noStandbyUnlessAskedFor() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        pool.send(.workerLeaving(pid: pool.forkedPIDs[0]))
        pool.exit(pool.forkedPIDs[0], served: true)
        pool.tickSeconds(3)
        #expect(pool.history.standbyForks == 0)
        #expect(pool.history.releases.isEmpty)
    }

    @Test func theStandbyIsForkedOnceTheFirstWorkersAreReadyAndKeptAtItsNumber() {
        var pool = PoolDriver(Self.settings(standby: 2))
        let start = pool.send(.start)
        #expect(start.forks.count == 2)
        #expect(start.standbyForks == 0, "the start waits for its workers only")
        #expect(pool.ready(pool.forkedPIDs[0]).standbyForks == 0)
        let ready = pool.ready(pool.forkedPIDs[1])
        #expect(ready.readyReports == 1)
        #expect(ready.standbyForks == 2, "once serving: \(ready)")
        #expect(pool.core.standbys.pids == pool.standbyPIDs)
        #expect(pool.tickSeconds(3).standbyForks == 0, "two are there")
        #expect(pool.core.workers.count == 2, "standbys are no workers")
        #expect(pool.core.publishedState(now: pool.now).highWater == 2, "nor slots")
    }

    @Test func aWorkerThatLeavesIsReplacedByTheStandbyWithoutAFork() throws {
        var pool = Self.serving()
        let first = pool.forkedPIDs[0]
        let standby = try #require(pool.standbyPIDs.first)
        let leaving = pool.send(.workerLeaving(pid: first))
        #expect(leaving.forks.isEmpty, "\(leaving)")
        let release = try #require(leaving.releases.first)
        #expect(release.pid == standby)
        #expect(release.slot != pool.slots[first], "a slot of its own: the old one is the leaving worker's until the reap")
        #expect(leaving.standbyForks == 0, "the next one waits until this one serves, and a moment more")
        #expect(pool.core.workers[standby]?.slot == release.slot)
        #expect(pool.core.workers[standby]?.ready != nil, "past worker init already")
        #expect(pool.staying.contains(standby) && pool.staying.count == 2)
        #expect(pool.tickAtDeadline().standbyForks == 1, "a standby behind it")
        #expect(pool.core.standbys.pids == [pool.standbyPIDs[1]], "the new standby, in worker init")
        let exited = pool.exit(first, served: true)
        #expect(exited.forks.isEmpty && exited.releases.isEmpty, "replaced already: \(exited)")
        #expect(exited.logs(.info, containing: "worker \(first) retired after serving its requests; its replacement was started as it left").count == 1)
    }

    @Test func theNextStandbyIsForkedOnceTheReleasedOneServes() throws {
        var pool = Self.serving()
        pool.standbysSayServing = false
        let standby = try #require(pool.standbyPIDs.first)
        let leaving = pool.send(.workerLeaving(pid: pool.forkedPIDs[0]))
        #expect(leaving.releases.map(\.pid) == [standby])
        #expect(leaving.standbyForks == 0, "not while it starts: \(leaving)")
        pool.set(standby, .starting) // its slot claimed, not in its accept loop yet
        #expect(pool.tickSeconds(2).standbyForks == 0)
        #expect(!pool.core.publishedState(now: pool.now).atCeiling, "a worker is still coming")
        let serving = pool.send(.standbyServing(pid: standby))
        #expect(serving.standbyForks == 0, "a moment after, not at once (the host would preempt it for the fork)")
        #expect(pool.core.nextDeadline == pool.now.advanced(bySeconds: Standbys.forkDelay))
        #expect(pool.tickAtDeadline().standbyForks == 1)
        // One that dies before it says so does not hold the next one back either.
        pool.ready(pool.standbyPIDs[1])
        let second = pool.standbyPIDs[1]
        #expect(pool.send(.workerLeaving(pid: pool.forkedPIDs[1])).releases.map(\.pid) == [second])
        pool.exit(second, .signaled(UnixSignal(SIGKILL), coreDumped: false))
        #expect(pool.tickAtDeadline().standbyForks == 1)
    }

    @Test func aLostServingLineDoesNotHoldTheNextStandbyBackForGood() throws {
        var pool = Self.serving()
        pool.standbysSayServing = false
        let standby = try #require(pool.standbyPIDs.first)
        #expect(pool.send(.workerLeaving(pid: pool.forkedPIDs[0])).releases.map(\.pid) == [standby])
        // Its slot says it is idle in its accept loop: the next tick takes that for "serving".
        pool.set(standby, .idle)
        #expect(pool.tick().standbyForks == 0, "a moment after")
        #expect(pool.tickAtDeadline().standbyForks == 1)
        #expect(pool.core.publishedState(now: pool.now).atCeiling)
    }

    @Test func aStopWaitsForAStandbyForkStillUnanswered() throws {
        var pool = Self.serving()
        pool.answersForks = false
        let standby = try #require(pool.standbyPIDs.first)
        #expect(pool.exit(standby, .signaled(UnixSignal(SIGKILL), coreDumped: false)).standbyForks == 1)
        pool.send(.stop)
        for pid in pool.forkedPIDs { #expect(pool.exit(pid).exits.isEmpty, "the fork asked for has not come back") }
        #expect(pool.send(.standbyForked(pid: 5151)).terms == [5151])
        #expect(pool.send(.workerExited(pid: 5151, status: .exited(0), served: false, active: false)).exits == [0])
    }

    @Test func aProvenStandbyThatDiesIsNoFailedStartButACrashCounts() throws {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2, { $0.standbyWorkers = 1 }, global: {
            $0.emergencyRestartThreshold = 2
            $0.emergencyRestartInterval = 60
        }))
        pool.startServing()
        pool.ready(pool.standbyPIDs[0])
        pool.tickSeconds(2) // waited past provenAfter
        let first = pool.standbyPIDs[0]
        let oom = pool.exit(first, .signaled(UnixSignal(SIGKILL), coreDumped: false))
        #expect(oom.logs(.error, containing: "standby worker \(first) was killed by SIGKILL while on standby after").count == 1, "\(oom)")
        #expect(pool.core.failures.consecutive == 0, "no failed start")
        #expect(oom.standbyForks == 1)
        let second = pool.standbyPIDs[1]
        pool.ready(second)
        pool.exit(second, .signaled(UnixSignal(SIGSEGV), coreDumped: false))
        let third = pool.standbyPIDs[2]
        pool.ready(third)
        let crashed = pool.exit(third, .signaled(UnixSignal(SIGSEGV), coreDumped: false))
        #expect(crashed.reports.contains { if case .emergencyRestart = $0 { true } else { false } }, "\(crashed)")
    }

    @Test func aStandbyStillInWorkerInitIsNotTaken() {
        var pool = PoolDriver(Self.settings())
        pool.startServing() // its standby is not ready
        let leaving = pool.send(.workerLeaving(pid: pool.forkedPIDs[0]))
        #expect(leaving.forks.count == 1, "a fork, as without a standby: \(leaving)")
        #expect(leaving.releases.isEmpty)
        #expect(leaving.standbyForks == 0, "the standby is there, in worker init")
    }

    @Test func aCrashedWorkersPlaceGoesToTheStandby() {
        var pool = Self.serving()
        let victim = pool.forkedPIDs[1]
        let exited = pool.exit(victim, .signaled(UnixSignal(SIGSEGV), coreDumped: false), served: true, active: true)
        #expect(exited.forks.isEmpty)
        #expect(exited.releases.map(\.pid) == [pool.standbyPIDs[0]])
        #expect(exited.releases.map(\.slot) == [pool.slots[victim]!], "the slot the reap freed")
        #expect(pool.tickAtDeadline().standbyForks == 1)
    }

    @Test func scalingUpTakesTheStandbyFirst() {
        var pool = Self.serving()
        pool.scaleTarget = 4
        let scaled = pool.tick()
        #expect(scaled.releases.map(\.pid) == [pool.standbyPIDs[0]])
        #expect(scaled.forks.count == 1, "the second place is forked: the new standby is in worker init")
        #expect(pool.core.staying.count + pool.core.forksInFlight == 4)
    }

    @Test func ondemandGivesAWaitingConnectionTheStandby() throws {
        var pool = PoolDriver(Self.settings(.ondemand, maxChildren: 4))
        pool.startServing()
        pool.exit(pool.forkedPIDs[0]) // the probe
        let standby = try #require(pool.standbyPIDs.first, "forked once the probe proved worker init")
        pool.ready(standby)
        let waiting = pool.send(.connectionWaiting(pool.observation))
        #expect(waiting.releases.map(\.pid) == [standby])
        #expect(waiting.forks.isEmpty)
        #expect(pool.core.workers.keys.sorted() == [standby])
        // Idle too long, it leaves as any ondemand worker; the new standby stays.
        pool.tickSeconds(12)
        #expect(pool.history.terms.contains(standby))
        #expect(pool.core.standbys.pids.count == 1)
    }

    @Test func aStopTermsTheStandbysAndWaitsForThem() throws {
        var pool = Self.serving()
        let standby = try #require(pool.standbyPIDs.first)
        let stop = pool.send(.stop)
        #expect(Set(stop.terms) == Set(pool.forkedPIDs + [standby]))
        for pid in pool.forkedPIDs { #expect(pool.exit(pid).exits.isEmpty, "the standby is still there") }
        // One asked for just before the stop leaves too.
        let late = pool.send(.standbyForked(pid: 4242))
        #expect(late.terms == [4242])
        #expect(pool.exit(standby).exits.isEmpty)
        let last = pool.send(.workerExited(pid: 4242, status: .exited(0), served: false, active: false))
        #expect(last.exits == [0])
        #expect(last.logs(.error).isEmpty, "leaving on a stop is no failure")
    }

    @Test func aStandbyWhoseWorkerInitFailsIsAFailedStartThatBacksOffAndRecovers() throws {
        var pool = PoolDriver(Self.settings())
        pool.startServing() // its standby in worker init
        pool.tickSeconds(2) // the workers are proven: only a standby can prove the pool recovered
        let first = pool.standbyPIDs[0]
        pool.send(.workerInitFailed(pid: first, reason: "cannot reach the database"))
        let once = pool.exit(first, .exited(3))
        #expect(once.logs(.error, containing: "standby worker \(first) failed its worker init: cannot reach the database; replacing it").count == 1, "\(once)")
        #expect(once.standbyForks == 1, "the first is replaced at once")
        let second = pool.standbyPIDs[1]
        pool.send(.workerInitFailed(pid: second, reason: "cannot reach the database"))
        let twice = pool.exit(second, .exited(3))
        #expect(twice.logs(.error, containing: "workers die right after they start (2 in a row, the last: standby worker \(second) failed its worker init: cannot reach the database)").count == 1, "\(twice)")
        #expect(twice.standbyForks == 0, "backing off")
        #expect(pool.history.terms.isEmpty, "the serving workers are not touched")
        // At the back-off's end, another; once it has waited a second, the pool is back to normal.
        #expect(pool.tickAtDeadline().standbyForks == 1)
        let third = pool.standbyPIDs[2]
        pool.ready(third)
        let recovered = pool.tickSeconds(2)
        #expect(recovered.logs(.notice, containing: "worker \(third) stays up after 2 workers died right after starting; back to normal").count == 1)
        #expect(pool.core.failures.consecutive == 0)
    }

    @Test func aStandbyKilledWhileWaitingIsReplaced() throws {
        var pool = Self.serving()
        let standby = try #require(pool.standbyPIDs.first)
        let killed = pool.exit(standby, .signaled(UnixSignal(SIGKILL), coreDumped: false))
        #expect(killed.logs(.error, containing: "standby worker \(standby) was killed by SIGKILL while on standby; replacing it").count == 1, "\(killed)")
        #expect(killed.standbyForks == 1)
        #expect(pool.core.workers.count == 2, "no worker was touched")
    }

    @Test func theHostPublishesTheStandbysWaiting() throws {
        var pool = PoolDriver(Self.settings())
        pool.startServing()
        #expect(pool.core.publishedState(now: pool.now).standbyWorkers == 0, "in worker init")
        pool.ready(pool.standbyPIDs[0])
        #expect(pool.core.publishedState(now: pool.now).standbyWorkers == 1)
        let leaving = pool.send(.workerLeaving(pid: pool.forkedPIDs[0]))
        #expect(leaving.contains(.publish(pool.core.publishedState(now: pool.now))))
        #expect(pool.core.publishedState(now: pool.now).standbyWorkers == 0, "it took a place")
    }

    @Test func theStateDumpListsTheStandbys() throws {
        var pool = Self.serving()
        let standby = try #require(pool.standbyPIDs.first)
        pool.send(.workerLeaving(pid: pool.forkedPIDs[0]))
        pool.tickAtDeadline()
        let lines = pool.core.dumpLines(now: pool.now)
        #expect(lines[0].contains("1 of 1 standby workers (1 took a place so far)"), "\(lines[0])")
        #expect(lines.contains { $0.contains("worker \(standby) slot ") }, "a worker now")
        #expect(lines.contains { $0.contains("standby worker \(pool.standbyPIDs[1]): forked 0.0 s ago, in worker init") }, "\(lines)")
    }
}
