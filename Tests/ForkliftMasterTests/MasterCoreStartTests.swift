import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// The first start: a reload transaction from nothing, whose failure means refusing to start.
@Suite struct MasterCoreStartTests {
    let two = CoreFixture.configuration(["www", "api"])

    @Test func theFirstStartAcquiresListenersThenForksEveryPoolAsACandidate() {
        var d = CoreDriver(two, mayLoadInBackground: true)
        let actions = d.send(.start)
        #expect(actions.first == .acquireListeners(two.pools))
        #expect(actions.forkedSpecs == two.pools.map {
            HostSpec(pool: $0, generation: 1, global: two.global, purpose: .candidate, loadsInBackground: false, scaleTarget: 0)
        }, "candidates of generation 1, at normal priority: nothing else competes for the CPU yet")
        #expect(d.openListeners == Set(two.pools.map(\.listen)))
        #expect(d.core.phase == .starting)
        #expect(d.forks.allSatisfy { d.role($0.pid) == .candidate })
        #expect(!actions.contains { if case .markLive = $0 { true } else { false } })
        #expect(d.core.transaction?.candidates == ["www": d.lastFork("www")!, "api": d.lastFork("api")!])
    }

    @Test func theFirstStartCommitsOnceEveryCandidateIsReady() throws {
        var d = CoreDriver(two)
        d.send(.start)
        let www = try #require(d.lastFork("www")), api = try #require(d.lastFork("api"))
        let first = d.ready(www)
        #expect(first.effects.isEmpty, "one pool ready is not enough: \(first)")
        #expect(d.core.phase == .starting && d.role(www) == .candidate)

        d.now = d.now.plus(0.25)
        let commit = d.ready(api)
        #expect(commit.count(of: .markLive(www)) == 1 && commit.count(of: .markLive(api)) == 1)
        #expect(commit.contains(.signal(www, .usr2)) && commit.contains(.signal(api, .usr2)), "USR2 opens the gates")
        #expect(commit.order(.markLive(api), before: .signal(api, .usr2)))
        #expect(!commit.contains { if case .retire = $0 { true } else if case .countWaiting = $0 { true } else { false } },
                "no older generation to retire: no switch to wait for")
        #expect(commit.contains(.applyGlobalSettings(old: two.global, new: two.global)))
        #expect(commit.contains(.closeListeners(keeping: Set(two.pools.map(\.listen)))))
        #expect(commit.logged(.notice, "started in 250 ms"))
        #expect(commit.logged(.notice, "forklift is ready: 2 pool(s) serving"))
        #expect(d.core.phase == .running && d.core.transaction == nil && d.core.switchInFlight == nil)
        #expect(d.live("www") == [www] && d.live("api") == [api])
        #expect(d.core.nextDeadline == nil, "nothing left to wait for")
        #expect(d.openListeners == Set(two.pools.map(\.listen)))
    }

    @Test func aHostFailureDuringTheFirstStartRollsBackAndExitsWith1() throws {
        var d = CoreDriver(two)
        d.send(.start)
        let www = try #require(d.lastFork("www")), api = try #require(d.lastFork("api"))
        d.ready(www)
        let failure = d.send(.report(api, .failed(reason: "plugin hello: preload: out of memory")))
        for pid in [www, api] {
            #expect(failure.order(.signalGroup(pid, .term), before: .signalGroup(pid, .kill)), "never served: KILLed at once")
        }
        #expect(failure.contains(.closeOpenedListeners(two.pools.map(\.listen))))
        #expect(failure.logged(.error, "forklift refuses to start: plugin hello: preload: out of memory"))
        #expect(failure.contains(.refuseNewConnections))
        #expect(!failure.contains(.markLive(www)))
        #expect(d.core.phase == .stopping && d.core.exitCode == 1)
        #expect(failure.exitCodes.isEmpty, "the hosts are still there")
        #expect(d.openListeners.isEmpty)

        #expect(d.exit(www, .signaled(.kill, coreDumped: false)).exitCodes.isEmpty)
        let last = d.exit(api, .exited(1))
        #expect(last.exitCodes == [1])
        #expect(d.core.exited)
        #expect(d.send(.signal(.hup)).isEmpty, "nothing is handled after the exit")
    }

    @Test func aCandidateThatExitsBeforeReadyStopsTheFirstStart() throws {
        var d = CoreDriver()
        d.send(.start)
        let www = try #require(d.lastFork("www"))
        let exit = d.exit(www, .signaled(UnixSignal(SIGSEGV), coreDumped: true))
        #expect(exit.messages(.error).contains { $0.hasPrefix("forklift refuses to start:") && $0.contains("before it was ready") })
        #expect(exit.exitCodes == [1], "no host left: the master exits at once")
    }

    @Test func aListenerFailureRefusesToStart() {
        var d = CoreDriver(two)
        d.listenFailure = "pool api: cannot listen on /srv/forklift/run/api.sock: address in use"
        let actions = d.send(.start)
        #expect(actions.forkedSpecs.isEmpty)
        #expect(actions.logged(.error, "forklift refuses to start: pool api: cannot listen"))
        #expect(actions.contains(.closeOpenedListeners([])))
        #expect(actions.exitCodes == [1])
        #expect(d.core.exited)
    }

    @Test func aForkFailureRefusesToStartAndKillsTheOtherCandidates() throws {
        var d = CoreDriver(two)
        d.forkFailure = { $0.pool.name == "api" ? "fork: resource temporarily unavailable" : nil }
        let actions = d.send(.start)
        let www = try #require(d.lastFork("www"))
        #expect(actions.contains(.signalGroup(www, .kill)))
        #expect(actions.logged(.error, "pool api: cannot start a host process: fork: resource temporarily unavailable"))
        #expect(d.core.exitCode == 1 && !d.core.exited)
        #expect(d.exit(www, .signaled(.kill, coreDumped: false)).exitCodes == [1])
    }

    @Test func theFirstStartRollsBackAtReloadTimeout() throws {
        var d = CoreDriver(CoreFixture.configuration(reloadTimeout: 5))
        d.send(.start)
        let www = try #require(d.lastFork("www"))
        #expect(d.core.nextDeadline == CoreFixture.t0.plus(5))
        #expect(d.advance(by: 4.9).effects.isEmpty)
        let timeout = d.advanceToNextDeadline()
        #expect(d.now == CoreFixture.t0.plus(5))
        #expect(timeout.logged(.error, "forklift refuses to start: the new generation was not ready within reload_timeout (5.0 s)"))
        #expect(timeout.contains(.signalGroup(www, .kill)))
        #expect(d.core.exitCode == 1)
        #expect(d.exit(www, .signaled(.kill, coreDumped: false)).exitCodes == [1])
    }

    @Test func reloadsScalingAndUpgradesAreRefusedWhileStarting() {
        var d = CoreDriver()
        d.send(.start)
        #expect(d.send(.signal(.hup)).logged(.error, "reload refused: forklift is still starting"))
        #expect(d.reload(client: 3).answers.map { $0.ok } == [false])
        #expect(d.send(.control(4, .upgrade)).answers.map { $0.text } == ["cannot upgrade now: forklift is not running normally"])
        #expect(d.send(.control(5, .scale(pool: "www", workers: 2))).answers.map { $0.text } == ["forklift is not running normally"])
        #expect(!d.history.contains(.readConfiguration) && !d.history.contains(.forkUpgrade))
    }

    @Test func aStopDuringTheFirstStartKillsTheCandidatesAndExits0() throws {
        var d = CoreDriver()
        d.send(.start)
        let www = try #require(d.lastFork("www"))
        let stop = d.send(.control(8, .stop))
        #expect(stop.contains(.signalGroup(www, .kill)))
        #expect(d.core.transaction == nil && d.core.exitCode == 0)
        #expect(d.ready(www).effects.isEmpty, "a late ready changes nothing")
        #expect(d.exit(www, .signaled(.kill, coreDumped: false)).exitAnswering == [[8]])
    }
}
