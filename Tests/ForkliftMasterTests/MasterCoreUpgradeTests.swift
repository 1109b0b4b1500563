import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// The old master's side of a binary upgrade.
@Suite struct MasterCoreUpgradeTests {
    let two = CoreFixture.configuration(["www", "api"], reloadTimeout: 20)

    @Test func anUpgradeHandsOverOnceNoOldWorkerWaitsThenStopsWithoutTouchingTheFiles() throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www")), api = try #require(d.lastFork("api"))
        let fork = d.send(.control(4, .upgrade))
        #expect(fork.effects == [.forkUpgrade])
        #expect(fork.logged(.notice, "upgrade: started the new master as pid 9000"))
        #expect(d.core.upgrade?.pid == 9000 && d.live("www") == [www], "this master serves while the new one loads")

        d.waitingCounts = [1]
        let ready = d.send(.upgradeMessage(.ready))
        #expect(ready.effects == [.retire(www), .signalGroup(www, .term), .retire(api), .signalGroup(api, .term), .countWaiting([www, api])])
        #expect(d.send(.upgradeMessage(.ready)).isEmpty, "once")
        let go = d.advanceToNextDeadline()
        #expect(go.effects == [.countWaiting([www, api]), .tellUpgrade(.go), .giveUpFiles,
                               .answer(4, ok: true, "upgraded: the new master is pid 9000")],
                "go only once no old worker waits; no refuseNewConnections: the sockets are the new master's")
        #expect(d.core.phase == .stopping && !d.core.ownsFiles && d.core.upgrade == nil)
        #expect(!d.history.contains(.refuseNewConnections))
        d.exit(www)
        let exit = d.exit(api)
        #expect(exit.exitCodes == [0] && exit.exitAnswering == [[]])
    }

    enum Failure: String, CaseIterable { case failedMessage, closed, exited, forkFailed }

    @Test(arguments: Failure.allCases)
    func anUpgradeThatFailsKeepsThisMasterServing(failure: Failure) throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www"))
        var actions: [CoreAction]
        switch failure {
        case .failedMessage:
            d.send(.control(4, .upgrade))
            actions = d.send(.upgradeMessage(.failed("pool www: plugin hello: preload failed")))
        case .closed:
            d.send(.control(4, .upgrade))
            actions = d.send(.upgradeMessage(.closed))
        case .exited:
            d.send(.control(4, .upgrade))
            actions = d.send(.upgradeExited(.exited(1)))
        case .forkFailed:
            d.upgradeForkFailure = "exec: no such file"
            actions = d.send(.control(4, .upgrade))
        }
        #expect(actions.answers.map { "\($0.client) \($0.ok)" } == ["4 false"])
        #expect(actions.answers.first?.text.hasPrefix("upgrade failed, the running master keeps serving: ") == true)
        #expect(actions.logged(.error, "upgrade failed, this master keeps serving"))
        #expect(actions.pids.isEmpty && d.live("www") == [www] && d.core.upgrade == nil && d.core.ownsFiles)
        #expect(d.core.nextDeadline == nil)
        #expect(d.reload().contains(.readConfiguration), "reloads work again")
    }

    @Test func reloadsAreRefusedDuringAnUpgradeUntilTheOldMasterGivesUp() throws {
        var d = CoreDriver.running(two)
        let startedAt = d.now
        d.send(.control(4, .upgrade))
        #expect(d.send(.signal(.hup)).effects.isEmpty)
        #expect(d.history.logged(.error, "reload refused: a binary upgrade is in progress; reload once it is done"))
        #expect(d.reload(client: 6).answers == [CoreAnswer(client: 6, ok: false, text: "a binary upgrade is in progress; reload once it is done")])
        #expect(d.send(.control(7, .upgrade)).answers.map { $0.text } == ["cannot upgrade now: a reload or an upgrade is in progress"])
        #expect(d.core.nextDeadline == startedAt.plus(20 + 10), "reload_timeout, and a little more")

        let giveUp = d.advanceToNextDeadline()
        #expect(giveUp.effects.prefix(2) == [.tellUpgrade(.abort), .signal(9000, .term)])
        #expect(giveUp.answers.map { "\($0.client) \($0.ok)" } == ["4 false"])
        #expect(d.core.upgrade == nil && d.core.phase == .running)
        #expect(d.send(.upgradeExited(.signaled(.term, coreDumped: false))).isEmpty, "its exit is old news")
        #expect(d.reload().contains(.readConfiguration), "reloads are accepted again")
    }

    @Test func anUpgradeIsRefusedDuringAReload() throws {
        var d = CoreDriver.running(two)
        d.reload()
        #expect(d.send(.control(2, .upgrade)).effects == [.answer(2, ok: false, "cannot upgrade now: a reload or an upgrade is in progress")])
    }

    @Test func aStopDuringAnUpgradeTellsTheNewMasterToLeave() throws {
        var d = CoreDriver.running(two)
        d.send(.control(4, .upgrade))
        let stop = d.send(.signal(.term))
        #expect(stop.effects.prefix(4) == [.tellUpgrade(.abort), .signal(9000, .term), .answer(4, ok: false, "upgrade failed, the running master keeps serving: forklift is stopping"), .refuseNewConnections])
        #expect(d.core.ownsFiles)
    }

    /// The bug this guards: the channel closing while this master retired its generations was
    /// ignored, so it could say go into a dead socket, give up its files and stop: nothing served.
    @Test func aNewMasterThatGoesAwayDuringTheHandOverIsAFailureNotAHandOver() throws {
        var d = CoreDriver.running(two)
        d.send(.control(4, .upgrade))
        d.waitingDefault = 1
        d.send(.upgradeMessage(.ready))
        let closed = d.send(.upgradeMessage(.closed))
        #expect(closed.logged(.error, "the new master went away while this one retired its generations"))
        #expect(closed.forkedSpecs.map { "\($0.pool.name) \($0.purpose)" } == ["www replacement", "api replacement"])
        d.waitingDefault = 0
        d.advance(by: 1)
        #expect(!d.history.contains(.tellUpgrade(.go)) && !d.history.contains(.giveUpFiles))
        #expect(d.core.phase == .running && d.core.ownsFiles && d.core.switchInFlight == nil)
    }

    @Test func aNewMasterThatFailsDuringTheHandOverGetsThisMastersPoolsServedAgain() throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www"))
        d.send(.control(4, .upgrade))
        d.waitingDefault = 1
        d.send(.upgradeMessage(.ready))
        let failed = d.send(.upgradeMessage(.failed("worker init failed")))
        #expect(failed.logged(.error, "upgrade: the generations retired for the handover are replaced"))
        #expect(failed.forkedSpecs.map { "\($0.pool.name) \($0.purpose)" } == ["www replacement", "api replacement"])
        d.waitingDefault = 0
        d.advance(by: 1)
        #expect(!d.history.contains(.tellUpgrade(.go)) && !d.history.contains(.giveUpFiles) && d.core.phase == .running)
        #expect(d.role(www) != .live)
        d.ready(d.lastFork("www")!)
        #expect(d.live("www") == [d.lastFork("www")!])
    }
}

/// The new master's side: `isHandoff`, started by an upgrading master that still serves.
@Suite struct MasterCoreHandoffTests {
    func started(_ generations: [String: Int] = ["www": 7]) -> CoreDriver {
        var d = CoreDriver(CoreFixture.configuration(reloadTimeout: 20), isHandoff: true, inheritedGenerations: generations)
        d.send(.start)
        return d
    }

    @Test func theFirstGenerationReadyIsReportedAndWaitsForGo() throws {
        var d = started()
        #expect(!d.core.ownsFiles)
        let pid = try #require(d.lastFork("www"))
        #expect(d.spec(of: pid)?.generation == 8, "generations continue from the old master's")
        let readyAt = d.now
        let ready = d.ready(pid)
        #expect(ready.effects == [.tellPreviousMaster(.ready)], "nothing goes live, no file is taken")
        #expect(d.role(pid) == .candidate && d.core.phase == .starting && !d.core.ownsFiles)
        #expect(d.core.nextDeadline == readyAt.plus(HandoffProgress.goTimeout), "the go timeout replaces reload_timeout")

        let go = d.send(.previousMasterMessage(.go))
        #expect(go.effects.prefix(3) == [.takeOverFiles, .markLive(pid), .signal(pid, .usr2)])
        #expect(go.logged(.notice, "the previous master retired its generations: serving"))
        #expect(go.logged(.notice, "forklift is ready"))
        #expect(d.core.ownsFiles && d.core.phase == .running && d.core.handoff == nil)
        #expect(d.send(.previousMasterMessage(.closed)).isEmpty, "its exit afterwards is expected")
        d.send(.signal(.term))
        #expect(d.history.contains(.refuseNewConnections), "its files now")
    }

    @Test func anAbortFromThePreviousMasterRollsBackAndExits1() throws {
        var d = started()
        let pid = try #require(d.lastFork("www"))
        d.ready(pid)
        let abort = d.send(.previousMasterMessage(.abort))
        #expect(abort.contains(.signalGroup(pid, .kill)))
        #expect(abort.contains(.tellPreviousMaster(.failed("the previous master gave up on this upgrade"))))
        #expect(!abort.contains(.refuseNewConnections) && !abort.contains(.takeOverFiles), "the files stay the old master's")
        #expect(d.exit(pid, .signaled(.kill, coreDumped: false)).exitCodes == [1])
    }

    @Test func aFailureBeforeReadyIsToldToThePreviousMaster() throws {
        var d = started()
        let failure = d.send(.report(d.lastFork("www")!, .failed(reason: "plugin hello: symbol not found")))
        #expect(failure.contains(.tellPreviousMaster(.failed("plugin hello: symbol not found"))))
        #expect(d.core.exitCode == 1)
    }

    @Test func thePreviousMasterGoneBeforeReadyMeansServingWhenReady() throws {
        var d = started()
        let pid = try #require(d.lastFork("www"))
        #expect(d.send(.previousMasterMessage(.closed)).isEmpty)
        let ready = d.ready(pid)
        #expect(!ready.contains(.tellPreviousMaster(.ready)))
        #expect(ready.effects.prefix(3) == [.takeOverFiles, .markLive(pid), .signal(pid, .usr2)])
        #expect(ready.logged(.notice, "the previous master is gone: serving"))
        #expect(d.core.ownsFiles && d.core.phase == .running)
    }

    @Test func thePreviousMasterGoneWhileWaitingForGoMeansServingAtOnce() throws {
        var d = started()
        let pid = try #require(d.lastFork("www"))
        d.ready(pid)
        let closed = d.send(.previousMasterMessage(.closed))
        #expect(closed.effects.prefix(2) == [.takeOverFiles, .markLive(pid)])
        #expect(closed.logged(.notice, "the previous master is gone: serving"))
    }

    @Test func noGoWithin10SecondsRollsBack() throws {
        var d = started()
        let pid = try #require(d.lastFork("www"))
        d.advance(by: 15) // reload_timeout (20 s) no longer counts once ready
        d.ready(pid)
        #expect(d.advance(by: 9.9).effects.isEmpty)
        let timeout = d.advanceToNextDeadline()
        #expect(timeout.logged(.error, "the previous master did not say go within 10.0 s of this one being ready"))
        #expect(timeout.contains(.signalGroup(pid, .kill)) && d.core.exitCode == 1)
    }
}
