import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// A pool whose live host dies gets a replacement: at once, then with doubling delays.
@Suite struct MasterCoreRestartTests {
    let segv = HostExit.signaled(UnixSignal(SIGSEGV), coreDumped: true)

    @Test func aLiveHostThatDiesIsReplacedAtOnce() throws {
        let configuration = CoreFixture.configuration()
        var d = CoreDriver.running(configuration)
        let live = try #require(d.lastFork("www"))
        let death = d.exit(live, segv)
        #expect(death.effects == [.forkHost(HostSpec(pool: configuration.pools[0], generation: 2, global: configuration.global,
                                                    purpose: .replacement, loadsInBackground: false, scaleTarget: 0))])
        #expect(death.logged(.error, "pool www gen 1 (host pid \(live)) "))
        #expect(death.logged(.error, "starting a new host in 0.0 s"))
        let replacement = try #require(d.lastFork("www"))
        #expect(d.role(replacement) == .replacement)
        #expect(d.core.isCovered("www"), "a replacement covers its pool: nothing else is started for it")
        #expect(d.ready(replacement).effects == [.markLive(replacement), .signal(replacement, .usr2)], "nothing to retire, no switch to wait for")
        #expect(d.live("www") == [replacement] && d.core.nextDeadline == nil)
    }

    @Test func failingReplacementsAreRetriedAfter1_2_4UpTo60Seconds() throws {
        var d = CoreDriver.running(CoreFixture.configuration(reloadTimeout: 600))
        d.exit(d.lastFork("www")!, segv)
        var delays: [Double] = []
        for _ in 0..<8 {
            let failed = try #require(d.lastFork("www"))
            let failedAt = d.now
            let exit = d.exit(failed, .exited(1))
            #expect(exit.forkedSpecs.isEmpty)
            let due = try #require(d.core.nextDeadline)
            delays.append(failedAt.seconds(until: due))
            #expect(d.advance(by: failedAt.seconds(until: due) - 0.001).forkedSpecs.isEmpty, "not before its time")
            let retry = d.advanceToNextDeadline()
            #expect(retry.forkedSpecs.map(\.purpose) == [.replacement])
            #expect(exit.logged(.error, "before it was ready; trying again in \(Formatting.seconds(delays.last!))"))
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60])
        #expect(d.spec(of: d.lastFork("www")!)?.generation == 10)
    }

    @Test func aFailedForkOfAReplacementBacksOffToo() throws {
        var d = CoreDriver.running()
        d.forkFailure = { _ in "fork: resource temporarily unavailable" }
        let death = d.exit(d.lastFork("www")!, segv)
        #expect(death.logged(.error, "cannot start a host for pool www: fork: resource temporarily unavailable; retrying in 1.0 s"))
        let failedAt = d.now
        #expect(d.core.nextDeadline == failedAt.plus(1))
        d.advanceToNextDeadline()
        #expect(d.core.nextDeadline == failedAt.plus(1 + 2))
        d.forkFailure = { _ in nil }
        let retry = d.advanceToNextDeadline()
        #expect(retry.forkedSpecs.count == 1 && d.core.isCovered("www"))
    }

    @Test func aReplacementThatBecomesReadyGoesLiveAndResetsTheDelay() throws {
        var d = CoreDriver.running()
        d.exit(d.lastFork("www")!, segv)
        for _ in 0..<3 {
            d.exit(d.lastFork("www")!, .exited(1))
            d.advanceToNextDeadline()
        }
        let good = try #require(d.lastFork("www"))
        #expect(d.ready(good).contains(.markLive(good)))
        d.advance(by: 3600)
        let again = d.exit(good, segv)
        #expect(again.forkedSpecs.count == 1, "served again at once: the delay starts afresh")
        #expect(again.logged(.error, "starting a new host in 0.0 s"))
    }

    /// The regression: a replacement whose worker init hung (after the live host was killed)
    /// made its pool look served for good. Nothing reports on such a host, so only a timer
    /// the core advertises itself can end it.
    @Test func regressionAHungReplacementIsKilledAtReloadTimeoutByItsOwnTimerAndThePoolIsServedAgain() throws {
        var d = CoreDriver.running(CoreFixture.configuration(reloadTimeout: 30))
        let live = try #require(d.lastFork("www"))
        d.advance(by: 100)
        let killedAt = d.now
        d.exit(live, .signaled(.kill, coreDumped: false)) // e.g. the OOM killer
        let hung = try #require(d.lastFork("www"))
        #expect(d.core.hosts[hung]?.started == killedAt)
        #expect(d.core.nextDeadline == killedAt.plus(30), "the replacement's reload_timeout: the only deadline")
        #expect(d.core.timers().map(\.timer) == [.replacementTimeout(hung)])

        // Its workers' init hangs: no report, no exit. Only the core's own deadline wakes the shell.
        let timeout = d.advanceToNextDeadline()
        #expect(d.now == killedAt.plus(30))
        #expect(timeout.effects == [.signalGroup(hung, .kill)])
        #expect(timeout.logged(.error, "pool www gen 2 (host pid \(hung)) was not ready within reload_timeout (30.0 s): killing it; the next host starts in 1.0 s"))
        #expect(!d.core.isCovered("www"))
        let restartDue = killedAt.plus(30).plus(1)
        #expect(d.core.nextDeadline == restartDue, "the restart delay is the next deadline")
        #expect(d.exit(hung, .signaled(.kill, coreDumped: false)).effects.isEmpty)
        #expect(d.core.nextDeadline == restartDue, "its exit changes nothing")

        let restart = d.advanceToNextDeadline()
        #expect(d.now == restartDue)
        #expect(restart.forkedSpecs.map { "\($0.generation) \($0.purpose)" } == ["3 replacement"])
        let fresh = try #require(d.lastFork("www"))
        #expect(d.ready(fresh).contains(.markLive(fresh)))
        #expect(killedAt.seconds(until: d.now) <= 30 + 1, "served again within reload_timeout + the restart delay")
        #expect(d.live("www") == [fresh] && d.core.nextDeadline == nil)
    }

    @Test func aReplacementThatReportedAFailureButLingersIsKilledAtReloadTimeoutToo() throws {
        var d = CoreDriver.running(CoreFixture.configuration(reloadTimeout: 30))
        d.exit(d.lastFork("www")!, segv)
        let failing = try #require(d.lastFork("www"))
        #expect(d.send(.report(failing, .failed(reason: "worker init: database unreachable"))).effects.isEmpty)
        #expect(d.advance(by: 30).contains(.signalGroup(failing, .kill)))
        #expect(d.advance(by: 1).forkedSpecs.count == 1)
    }
}

/// PHP-FPM's emergency restart: a live host that asks for it is replaced by a fresh one,
/// with the same strict switch as a reload; repeated requests back off.
@Suite struct MasterCoreEmergencyRestartTests {
    @discardableResult
    func emergency(_ d: inout CoreDriver, _ pid: pid_t) -> [CoreAction] {
        d.send(.report(pid, .emergencyRestart(reason: "10 workers died of a signal within 60.0 s")))
    }

    @Test func theOldHostServesUntilItsReplacementIsReadyThenIsRetired() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        let request = emergency(&d, old)
        #expect(request.forkedSpecs.map { "\($0.generation) \($0.purpose)" } == ["2 replacement"])
        #expect(request.logged(.error, "asks for an emergency restart (10 workers died of a signal within 60.0 s)"))
        #expect(request.logged(.error, "starts now, and takes over once ready"))
        #expect(!request.pids.contains(old) && d.role(old) == .live, "it keeps serving meanwhile")
        let fresh = try #require(d.lastFork("www"))
        #expect(emergency(&d, fresh).isEmpty, "only a live host may ask")

        d.waitingCounts = [1]
        let readyAt = d.now
        let takeOver = d.ready(fresh)
        let order: [CoreAction] = [.retire(old), .signalGroup(old, .term), .countWaiting([old])]
        for (a, b) in zip(order, order.dropFirst()) { #expect(takeOver.order(a, before: b)) }
        #expect(!takeOver.contains(.markLive(fresh)), "an old worker still waits")
        #expect(d.advanceToNextDeadline().effects == [.countWaiting([old]), .markLive(fresh), .signal(fresh, .usr2)])
        #expect(d.live("www") == [fresh] && d.role(old) == .draining(deadline: readyAt.plus(60)))
    }

    @Test func repeatedEmergenciesWithin5MinutesWait1sThen2sThenStartAfresh() throws {
        var d = CoreDriver.running()
        var current = try #require(d.lastFork("www"))
        var delays: [Double] = []
        for gap in [0.0, 10, 10, 10, 301] {
            d.advance(by: gap)
            let askedAt = d.now
            let request = emergency(&d, current)
            if request.forkedSpecs.isEmpty {
                let due = try #require(d.core.nextDeadline)
                delays.append(askedAt.seconds(until: due))
                #expect(d.advanceToNextDeadline().forkedSpecs.count == 1)
            } else {
                delays.append(0)
            }
            let old = current
            current = try #require(d.lastFork("www"))
            d.ready(current)
            #expect(d.live("www") == [current])
            d.exit(old)
        }
        #expect(delays == [0, 1, 2, 4, 0])
    }

    @Test func anEmergencyWhileStartingOrOfANonLiveHostIsIgnored() throws {
        var d = CoreDriver()
        d.send(.start)
        #expect(emergency(&d, d.lastFork("www")!).isEmpty)
        #expect(d.send(.report(4242, .emergencyRestart(reason: "?"))).isEmpty, "a pid it does not know")
    }

    @Test func aLiveHostThatDiesWhileItsEmergencyReplacementStartsLeavesThatReplacementToTakeOver() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        emergency(&d, old)
        let fresh = try #require(d.lastFork("www"))
        #expect(d.exit(old, HostExit.signaled(.kill, coreDumped: false)).forkedSpecs.isEmpty, "one replacement is enough")
        #expect(d.ready(fresh).effects == [.markLive(fresh), .signal(fresh, .usr2)])
    }
}
