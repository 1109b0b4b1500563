import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// One switch at a time, and what waits for it: each test is named after a bug these guard
/// (found while the core was first tested: a reload deferred for ever behind a replacement's
/// switch, a ready reload rolled back, two live generations of one pool, a pool left unserved
/// by a candidate that died mid-commit, emergency restarts silenced, a scale lost at commit).
@Suite struct MasterCoreSwitchOrderTests {
    @discardableResult
    func emergency(_ d: inout CoreDriver, _ pid: pid_t) -> [CoreAction] {
        d.send(.report(pid, .emergencyRestart(reason: "10 workers died of a signal within 60.0 s")))
    }

    /// A reload deferred while *any* switch is in flight runs once that switch is over (a
    /// replacement's too), and later reloads are not deferred for ever.
    @Test func aReloadAskedForDuringAReplacementSwitchRunsOnceTheSwitchIsDone() throws {
        var d = CoreDriver.running()
        emergency(&d, d.lastFork("www")!)
        let fresh = try #require(d.lastFork("www"))
        d.waitingDefault = 1 // an old worker stalls the switch (up to 200 ms)
        d.ready(fresh)
        #expect(d.core.switchInFlight != nil)
        d.reload(client: 3)
        d.advance(by: 1)
        #expect(d.live("www") == [fresh])
        #expect(d.history.count(of: .readConfiguration) == 1, "the deferred reload runs after the switch")
        d.waitingDefault = 0
        let candidate = try #require(d.lastFork("www"))
        #expect(candidate != fresh)
        d.ready(candidate)
        d.advance(by: 1)
        #expect(d.history.answers.map { $0.client }.contains(3), "client 3 gets an answer")
        #expect(d.reload(client: 4).contains(.readConfiguration), "and later reloads are not deferred for ever")
    }

    /// A reload's candidates that become ready while a replacement's switch is in flight are
    /// committed once it is over, not rolled back at reload_timeout.
    @Test func aReloadWhoseCandidatesAreReadyDuringAReplacementSwitchCommitsAfterIt() throws {
        var d = CoreDriver.running(CoreFixture.configuration(reloadTimeout: 30))
        let old = try #require(d.lastFork("www"))
        d.reload(client: 3)
        let candidate = try #require(d.lastFork("www"))
        emergency(&d, old)
        let fresh = try #require(d.lastFork("www"))
        d.waitingCounts = [1]
        d.ready(fresh) // the replacement's switch waits for an old worker
        d.ready(candidate) // meanwhile the reload is ready
        d.advance(by: 1)
        let committed = d.history.contains(.markLive(candidate))
        #expect(committed, "committed once the replacement's switch is over")
        d.advance(by: 60)
        #expect(d.history.answers.map { "\($0.client) \($0.ok)" } == ["3 true"], "not 'not ready within reload_timeout'")
    }

    /// An emergency replacement that becomes ready while another pool's switch is in flight
    /// waits for it, then retires the host it replaces: one live generation per pool.
    @Test func anEmergencyReplacementReadyDuringAnotherPoolsSwitchRetiresTheHostItReplaces() throws {
        var d = CoreDriver.running(CoreFixture.configuration(["www", "api"]))
        let oldWWW = try #require(d.lastFork("www")), oldAPI = try #require(d.lastFork("api"))
        emergency(&d, oldWWW)
        emergency(&d, oldAPI)
        let freshWWW = try #require(d.lastFork("www")), freshAPI = try #require(d.lastFork("api"))
        d.waitingCounts = [1]
        d.ready(freshWWW) // www's switch waits for an old worker
        d.ready(freshAPI)
        d.advance(by: 1)
        #expect(d.live("www") == [freshWWW])
        let retired = d.history.contains(.retire(oldAPI))
        #expect(retired, "the host that asked to be replaced is retired")
        #expect(d.live("api") == [freshAPI], "one live generation per pool")
    }

    /// Once the commit's switch began, the old generation is retired: a candidate that dies
    /// then cannot roll the reload back. The commit completes and its pool gets a new host.
    @Test func aCandidateThatDiesDuringTheSwitchLeavesItsPoolServed() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        d.reload(client: 2)
        let candidate = try #require(d.lastFork("www"))
        d.waitingDefault = 1
        let commit = d.ready(candidate)
        #expect(commit.contains(.retire(old)) && commit.contains(.signalGroup(old, .term)))
        d.exit(candidate, .signaled(UnixSignal(SIGSEGV), coreDumped: true))
        #expect(d.live("www").isEmpty)
        d.exit(old) // drained
        d.advance(by: 120)
        let covered = d.core.isCovered("www")
        #expect(covered, "a host is started for the pool that nothing serves")
    }

    /// A host that asks again while its replacement loads is ignored, and the new live host's
    /// own request later is honoured.
    @Test func aRepeatedRequestWhileTheReplacementLoadsDoesNotSilenceTheNextHost() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        emergency(&d, old)
        let fresh = try #require(d.lastFork("www"))
        d.advance(by: 5)
        emergency(&d, old) // its workers keep dying while the replacement loads
        d.ready(fresh)
        d.exit(old)
        #expect(d.live("www") == [fresh])
        d.advance(by: 600)
        let request = emergency(&d, fresh)
        #expect(request.forkedSpecs.count == 1, "the new live host's request is honoured")
        #expect(request.logged(.error, "asks for an emergency restart"))
    }

    /// A scale during a reload does not reach the candidate (the commit starts from the
    /// configuration): the master's view and the live host agree.
    @Test func aScaleDuringAReloadIsEitherKeptOrUndoneAtTheCommit() throws {
        var d = CoreDriver.running()
        d.reload()
        let candidate = try #require(d.lastFork("www"))
        d.send(.control(1, .scale(pool: "www", workers: 3)))
        d.ready(candidate)
        let written = d.history.compactMap { if case .setScaleTarget(candidate, let n) = $0 { n } else { nil } }.last
        let believed = d.core.currentScale(d.core.configuration.pools[0])
        #expect(believed == written ?? 4,
                "the master's view of the pool matches what its live host was told")
    }
}
