import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// `CoreDriver` checks after every event it hands the core that no deadline is left in the
/// past (the shell's poll would return at once, for ever) and that no action names a pid the
/// core does not track. These tests show the checks can fail, and run a long mixed day.
@Suite struct MasterCoreInvariantTests {
    @Test func theInvariantChecksCatchAStrangerAndABusyLoop() throws {
        var d = CoreDriver.running()
        let www = try #require(d.lastFork("www"))
        withKnownIssue("a pid the core does not know") {
            d.checkInvariants([.signalGroup(4242, .kill)], after: .tick, upgradeBefore: nil, sourceLocation: #_sourceLocation)
        }
        d.core.hosts[www]?.role = .draining(deadline: d.now) // a die_timeout due now, not acted on
        withKnownIssue("a deadline that is not in the future") {
            d.checkInvariants([], after: .tick, upgradeBefore: nil, sourceLocation: #_sourceLocation)
        }
        #expect(d.send(.tick) == [.log(.error, "pool www gen 1 (host pid \(www)) still busy after die_timeout (60.0 s): killing it and its workers"),
                                  .signalGroup(www, .kill)], "the tick acts on it, once")
        #expect(d.core.nextDeadline == nil)
    }

    @Test func aHostThatExitedIsNeverSignalledAgain() throws {
        var d = CoreDriver.running(CoreFixture.configuration(["www", "api"]))
        let www = try #require(d.lastFork("www"))
        d.exit(www, .signaled(UnixSignal(SIGSEGV), coreDumped: false))
        d.ready(d.lastFork("www")!)
        let later = d.send(.signal(.usr1)) + d.send(.signal(.ttin)) + d.reload() + d.send(.signal(.term))
        #expect(!later.pids.contains(www))
        #expect(d.send(.report(www, .ready(summary: "late"))).isEmpty && d.exit(www).isEmpty, "news of a reaped pid is ignored")
    }

    @Test func aListenerFailureDuringAReloadKeepsTheOldGeneration() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        d.listenFailure = "pool api: cannot listen on 127.0.0.1:9000: address in use"
        let failure = d.reload(to: CoreFixture.configuration(["www", "api"]), client: 2)
        #expect(failure.forkedSpecs.isEmpty)
        #expect(failure.answers == [CoreAnswer(client: 2, ok: false, text: "reload failed, rolled back: pool api: cannot listen on 127.0.0.1:9000: address in use")])
        #expect(d.live("www") == [old] && d.core.transaction == nil && d.core.phase == .running)
    }

    /// Everything at once, for the invariant checks: reloads (stalled switch, rolled back,
    /// broken files), deaths, back-off, emergencies, scaling, a failed upgrade, long idle
    /// stretches, then a stop that has to KILL.
    @Test func aLongDayNeverBusyLoopsNorSignalsAStranger() throws {
        var d = CoreDriver.running(CoreFixture.configuration(["www", "api"], reloadTimeout: 30, dieTimeout: 20))
        d.send(.signal(.ttin))
        d.waitingCounts = [3, 2, 1]
        d.reload(client: 1)
        d.advance(by: 0.3)
        d.ready(d.lastFork("www")!)
        d.ready(d.lastFork("api")!)
        d.advance(by: 0.3)
        #expect(d.history.answers.map { "\($0.client) \($0.ok)" } == ["1 true"])
        for pid in d.core.hosts.values.filter(\.isDraining).map(\.pid) { d.exit(pid) }

        d.exit(d.live("www")[0], .signaled(UnixSignal(SIGSEGV), coreDumped: true))
        d.exit(d.lastFork("www")!, .exited(1))
        d.advance(by: 0.5)
        d.advance(by: 1)
        d.ready(d.lastFork("www")!)
        d.send(.report(d.live("api")[0], .emergencyRestart(reason: "crashes")))
        d.waitingCounts = [1]
        d.ready(d.lastFork("api")!)
        d.advance(by: 25)

        d.disk = .failure(ConfigurationError(file: "/srv/forklift/conf.d/forklift.toml", key: nil, "unterminated table"))
        d.send(.signal(.hup))
        d.disk = .success(d.core.configuration)
        d.reload(client: 2)
        d.send(.report(d.lastFork("api")!, .failed(reason: "plugin hello: preload failed")))
        d.send(.control(3, .upgrade))
        d.send(.upgradeMessage(.closed))
        d.advance(by: 1000)
        #expect(d.live("www").count == 1 && d.live("api").count == 1)
        #expect(d.history.answers.map { "\($0.client) \($0.ok)" } == ["1 true", "2 false", "3 false"])

        let stoppedAt = d.now
        d.send(.control(4, .stop))
        for pid in d.core.hosts.values.filter({ $0.pool.name == "api" }).map(\.pid) { d.exit(pid) }
        d.advance(by: 30)
        #expect(d.now == stoppedAt.plus(30))
        for pid in d.core.hosts.keys.sorted() { d.exit(pid, .signaled(.kill, coreDumped: false)) }
        #expect(d.history.exitCodes == [1] && d.history.exitAnswering == [[4]])
        #expect(d.history.count(of: .readConfiguration) == 3)
    }
}
