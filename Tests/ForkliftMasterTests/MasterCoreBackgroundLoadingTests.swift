import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// A reload's new generation loads at idle CPU priority after its first 50 ms, as the core
/// drives it: lowered and raised by `.setPriority`, answered by `.priorityChanged`.
@Suite struct MasterCoreBackgroundLoadingTests {
    let configuration = CoreFixture.configuration(reloadTimeout: 60, backgroundLoading: 30)

    /// A running master, and the candidate of a reload forked at `d.now`.
    func reloading(mayLoadInBackground: Bool = true, _ configure: (inout CoreDriver) -> Void = { _ in }) throws -> (CoreDriver, pid_t) {
        var d = CoreDriver.running(configuration, mayLoadInBackground: mayLoadInBackground)
        configure(&d)
        d.reload()
        return (d, try #require(d.lastFork("www")))
    }

    @Test func aReloadCandidateIsLoweredAfter50msAndRaisedOnceLoaded() throws {
        var (d, pid) = try reloading()
        let forkedAt = d.now
        #expect(d.spec(of: pid)?.loadsInBackground == true)
        #expect(d.core.nextDeadline == forkedAt.plus(BackgroundLoading.grace))
        #expect(d.advance(by: 0.049).effects.isEmpty)
        let lower = d.advanceToNextDeadline()
        #expect(lower.effects == [.setPriority(pid, .lower)])
        #expect(lower.logged(.info, "is still loading after 50 ms: it continues at idle CPU priority, for at most 30.0 s"))
        #expect(d.core.nextDeadline == d.now.plus(30), "back to normal priority at the limit")

        let loaded = d.send(.report(pid, .loaded))
        #expect(loaded.effects == [.setPriority(pid, .raise(.loaded))])
        #expect(loaded.logged(.info, "loaded at idle CPU priority and is back to normal priority"))
        #expect(d.core.nextDeadline == forkedAt.plus(60), "only reload_timeout is left")
        #expect(d.ready(pid).contains(.markLive(pid)))
    }

    @Test func aCandidateLoadedWithinTheGraceIsNeverLowered() throws {
        var (d, pid) = try reloading()
        d.advance(by: 0.01)
        #expect(d.send(.report(pid, .loaded)).effects.isEmpty)
        #expect(d.advance(by: 1).effects.isEmpty)
        #expect(!d.history.contains { if case .setPriority = $0 { true } else { false } })
    }

    @Test func aCandidateStillLoadingAtTheLimitContinuesAtNormalPriority() throws {
        var (d, pid) = try reloading()
        d.advance(by: 0.05)
        let loweredAt = d.now
        let limit = d.advance(by: 30)
        #expect(limit.effects == [.setPriority(pid, .raise(.limitReached))])
        #expect(limit.logged(.notice, "still loading after 30.0 s at idle CPU priority (background_loading): it continues at normal priority"))
        #expect(d.now == loweredAt.plus(30))
        #expect(d.send(.report(pid, .loaded)).effects.isEmpty, "already at normal priority")
    }

    @Test func aFailedRaiseOnceLoadedRollsTheReloadBack() throws {
        var (d, pid) = try reloading { $0.priorityError = { _, change in change == .raise(.loaded) ? "setpriority: permission denied" : nil } }
        let old = try #require(d.live("www").first)
        d.advance(by: 0.05)
        let loaded = d.send(.report(pid, .loaded))
        #expect(loaded.logged(.error, "cannot be raised back from idle CPU priority: setpriority: permission denied"))
        #expect(loaded.contains(.signalGroup(pid, .kill)))
        #expect(loaded.logged(.error, "could not be raised back from idle CPU priority (set background_loading = 0)"))
        #expect(d.core.transaction == nil && d.live("www") == [old])
    }

    @Test func aFailedRaiseAtTheLimitIsRetriedWhenLoaded() throws {
        var (d, pid) = try reloading { $0.priorityError = { _, change in change == .raise(.limitReached) ? "EPERM" : nil } }
        d.advance(by: 0.05)
        let limit = d.advance(by: 30)
        #expect(limit.logged(.error, "cannot be raised back from idle CPU priority: EPERM"))
        #expect(d.core.transaction != nil, "not rolled back yet")
        #expect(d.send(.report(pid, .loaded)).effects == [.setPriority(pid, .raise(.loaded))])
        #expect(d.ready(pid).contains(.markLive(pid)))
    }

    @Test func aFailedLoweringLoadsAtNormalPriority() throws {
        var (d, pid) = try reloading { $0.priorityError = { _, change in change == .lower ? "EPERM" : nil } }
        let lower = d.advance(by: 0.05)
        #expect(lower.logged(.warning, "keeps loading at normal CPU priority: EPERM"))
        #expect(d.send(.report(pid, .loaded)).effects.isEmpty, "never lowered: nothing to raise")
    }

    @Test func aLoweredCandidateIsRaisedBeforeItIsToldToStop() throws {
        var (d, pid) = try reloading()
        d.advance(by: 0.05)
        let stop = d.send(.signal(.term))
        #expect(stop.order(.setPriority(pid, .raise(.stopping)), before: .signalGroup(pid, .term)), "a TERMed host finishes its preload first: at normal priority")
        #expect(stop.logged(.debug, "is told to stop while loading: back to normal CPU priority"))
    }

    @Test func aRolledBackCandidateIsRaisedToo() throws {
        var (d, pid) = try reloading()
        d.advance(by: 0.05)
        let failure = d.send(.report(pid, .failed(reason: "plugin hello: preload: out of memory")))
        #expect(failure.order(.setPriority(pid, .raise(.stopping)), before: .signalGroup(pid, .term)))
        #expect(failure.order(.signalGroup(pid, .term), before: .signalGroup(pid, .kill)))
    }

    @Test(arguments: [(mayLoad: false, seconds: 30.0), (mayLoad: true, seconds: 0.0)])
    func noBackgroundLoadingUnlessTheMasterMayRaiseAndItIsOn(mayLoad: Bool, seconds: Double) throws {
        var d = CoreDriver.running(CoreFixture.configuration(backgroundLoading: seconds), mayLoadInBackground: mayLoad)
        d.reload()
        let pid = try #require(d.lastFork("www"))
        #expect(d.spec(of: pid)?.loadsInBackground == false)
        #expect(d.advance(by: 1).effects.isEmpty)
    }

    @Test func replacementsLoadAtNormalPriorityButAHandoffsFirstGenerationMayNot() throws {
        var d = CoreDriver.running(configuration, mayLoadInBackground: true)
        d.exit(d.lastFork("www")!, .signaled(.kill, coreDumped: false))
        #expect(d.spec(of: d.lastFork("www")!)?.loadsInBackground == false, "a replacement serves a pool that nothing serves")

        var handoff = CoreDriver(configuration, isHandoff: true, mayLoadInBackground: true)
        handoff.send(.start)
        #expect(handoff.spec(of: handoff.lastFork("www")!)?.loadsInBackground == true, "the old master still serves")
    }
}
