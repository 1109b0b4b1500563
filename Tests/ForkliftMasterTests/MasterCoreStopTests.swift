import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// Graceful stop, FCGI::ProcManager's way: every host drains; die_timeout KILLs survivors.
@Suite struct MasterCoreStopTests {
    let two = CoreFixture.configuration(["www", "api"], dieTimeout: 20)

    @Test(arguments: [UnixSignal.term, .int, .quit])
    func aStopSignalDrainsEveryHostAndExitsOnceAllAreGone(signal: UnixSignal) throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www")), api = try #require(d.lastFork("api"))
        let stop = d.send(.signal(signal))
        #expect(stop.logged(.notice, "\(signal) received: stopping gracefully"))
        #expect(stop.effects == [.refuseNewConnections, .signalGroup(www, .term), .signalGroup(api, .term)],
                "TERM to each whole group, no KILL, no retire (nothing takes over)")
        #expect(d.core.phase == .stopping)
        #expect(d.role(www) == .draining(deadline: d.now.plus(20)))
        #expect(d.exit(www).exitCodes.isEmpty, "api is still draining")
        let last = d.exit(api)
        #expect(last.exitCodes == [0])
        #expect(last.logged(.notice, "forklift master exits with status 0"))
        #expect(d.core.exited && d.core.nextDeadline == nil)
    }

    @Test func stopClientsAreAnsweredByTheExit() throws {
        var d = CoreDriver.running()
        let www = try #require(d.lastFork("www"))
        d.send(.control(3, .stop))
        #expect(d.send(.control(4, .stop)).effects.isEmpty, "already stopping: it only waits")
        d.send(.signal(.term))
        #expect(d.exit(www).exitAnswering == [[3, 4]])
    }

    @Test func hostsThatNeverServedAreKilledAtOnce() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        d.reload(client: 9)
        let candidate = try #require(d.lastFork("www"))
        let stop = d.send(.signal(.term))
        #expect(stop.order(.signalGroup(candidate, .term), before: .signalGroup(candidate, .kill)), "nothing in flight: no need to wait for its preload")
        #expect(stop.contains(.signalGroup(old, .term)) && !stop.contains(.signalGroup(old, .kill)), "the live host finishes its requests")
        #expect(stop.answers == [CoreAnswer(client: 9, ok: false, text: "forklift is stopping")])
        #expect(d.core.transaction == nil)
        #expect(d.ready(candidate).effects.isEmpty, "a late ready commits nothing")
        d.exit(candidate, .signaled(.kill, coreDumped: false))
        #expect(d.exit(old).exitCodes == [0])
    }

    @Test func aReplacementThatWasNotReadyYetIsKilledAtOnceToo() throws {
        var d = CoreDriver.running()
        d.exit(d.lastFork("www")!, .signaled(.kill, coreDumped: false))
        let replacement = try #require(d.lastFork("www"))
        #expect(d.role(replacement) == .replacement)
        #expect(d.send(.signal(.term)).contains(.signalGroup(replacement, .kill)))
    }

    @Test func dieTimeoutKillsSurvivorsAndTheExitCodeIs1() throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www")), api = try #require(d.lastFork("api"))
        let stoppedAt = d.now
        d.send(.signal(.term))
        d.advance(by: 5)
        d.exit(www)
        #expect(d.core.nextDeadline == stoppedAt.plus(20))
        #expect(d.advance(by: 14.9).effects.isEmpty)
        let kill = d.advanceToNextDeadline()
        #expect(kill.effects == [.signalGroup(api, .kill)])
        #expect(kill.logged(.error, "pool api gen 1 (host pid \(api)) still busy after die_timeout (20.0 s): killing it and its workers"))
        #expect(d.core.exitCode == 1 && d.core.nextDeadline == nil, "KILLed once")
        #expect(d.exit(api, .signaled(.kill, coreDumped: false)).exitCodes == [1])
    }

    @Test func dieTimeout0WaitsForEver() throws {
        var d = CoreDriver.running(CoreFixture.configuration(dieTimeout: 0))
        let www = try #require(d.lastFork("www"))
        d.send(.signal(.term))
        #expect(d.role(www) == .draining(deadline: nil) && d.core.nextDeadline == nil)
        #expect(d.advance(by: 3600).effects.isEmpty)
        #expect(d.exit(www).exitCodes == [0])
    }

    @Test func nothingElseStartsWhileStopping() throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www"))
        d.send(.signal(.term))
        #expect(d.send(.signal(.hup)).logged(.error, "reload refused: forklift is stopping"))
        #expect(d.reload(client: 2).answers == [CoreAnswer(client: 2, ok: false, text: "forklift is stopping")])
        #expect(d.send(.control(3, .upgrade)).answers.map { $0.ok } == [false])
        #expect(d.send(.report(www, .emergencyRestart(reason: "crashes"))).isEmpty)
        #expect(d.exit(www, .signaled(UnixSignal(SIGSEGV), coreDumped: false)).forkedSpecs.isEmpty, "a host that dies while stopping is not replaced")
        #expect(d.advance(by: 120).forkedSpecs.isEmpty)
    }

    @Test func aStopDuringTheSwitchKillsTheCandidatesThatNeverWentLive() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        d.reload()
        let new = try #require(d.lastFork("www"))
        d.waitingDefault = 1
        d.ready(new)
        let stop = d.send(.signal(.term))
        #expect(d.core.switchInFlight == nil)
        #expect(stop.contains(.signalGroup(new, .kill)) && !stop.contains(.signalGroup(old, .kill)))
        #expect(!d.advance(by: 1).contains(.markLive(new)))
    }
}
