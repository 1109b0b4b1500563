import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// Reloads: a new generation for every pool, committed with a strict switch, or rolled back.
@Suite struct MasterCoreReloadTests {
    @Test func aReloadForksASecondGenerationWhileTheFirstServes() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        let reload = d.reload()
        let new = try #require(d.lastFork("www"))
        let spec = try #require(d.spec(of: new))
        #expect(reload.effects == [.readConfiguration, .acquireListeners(d.core.configuration.pools), .forkHost(spec)])
        #expect(new != old)
        #expect(d.spec(of: new)?.generation == 2 && d.spec(of: new)?.purpose == .candidate)
        #expect(d.role(old) == .live && d.role(new) == .candidate)
        #expect(!reload.contains(.signalGroup(old, .term)))
    }

    @Test func theCommitRetiresTheOldGenerationBeforeTheNewOneOpensItsGates() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        d.reload(client: 4)
        let new = try #require(d.lastFork("www"))
        d.now = d.now.plus(1)
        let commit = d.ready(new)
        let order: [CoreAction] = [.retire(old), .signalGroup(old, .term), .countWaiting([old]), .markLive(new), .signal(new, .usr2)]
        for (a, b) in zip(order, order.dropFirst()) { #expect(commit.order(a, before: b), "\(a) before \(b)") }
        #expect(d.role(old) == .draining(deadline: d.now.plus(60)), "KILLed at die_timeout if still busy")
        #expect(d.role(new) == .live)
        #expect(commit.answers == [CoreAnswer(client: 4, ok: true, text: "reloaded in 1000 ms: pool www gen 2: pid=\(new) workers=4 load_ms=3.0")])
        #expect(d.core.transaction == nil && d.core.switchInFlight == nil)
        #expect(!d.history.contains(.refuseNewConnections))
    }

    @Test func theNewGenerationWaitsUntilNoOldWorkerIsWaitingForAConnection() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        d.reload()
        let new = try #require(d.lastFork("www"))
        d.waitingCounts = [2, 1]
        let readyAt = d.now
        let commit = d.ready(new)
        #expect(commit.contains(.countWaiting([old])) && !commit.contains(.markLive(new)))
        #expect(d.core.nextDeadline == readyAt.plus(GenerationSwitch.checkInterval), "asks again in 0.5 ms")
        let second = d.advanceToNextDeadline()
        #expect(second.effects == [.countWaiting([old])], "one worker still waits")
        let third = d.advanceToNextDeadline()
        #expect(third.contains(.countWaiting([old])) && third.contains(.markLive(new)) && third.contains(.signal(new, .usr2)))
        #expect(!d.history.logged(.warning, "still counted as waiting"))
        #expect(d.now < readyAt.plus(0.002))
    }

    @Test(arguments: [Optional(1), nil])
    func aStalledOldWorkerHoldsTheSwitchAtMost200ms(answer: Int?) throws {
        var d = CoreDriver.running()
        d.reload()
        let new = try #require(d.lastFork("www"))
        d.waitingDefault = answer // 1: one worker counted for ever; nil: the count never comes back
        let readyAt = d.now
        d.ready(new)
        var ticks = 0
        while !d.history.contains(.markLive(new)) && ticks < 1000 {
            d.advanceToNextDeadline()
            ticks += 1
            #expect(d.now <= readyAt.plus(GenerationSwitch.limit))
        }
        #expect(d.now == readyAt.plus(GenerationSwitch.limit), "live exactly at the limit, woken by the core's own deadline")
        #expect(d.history.logged(.warning, "an old worker still counted as waiting after 200 ms"))
        #expect(d.role(new) == .live && d.core.switchInFlight == nil)
    }

    @Test func aFailedCandidateIsRolledBackAndTheOldGenerationKeepsServing() throws {
        let one = CoreFixture.configuration()
        var d = CoreDriver.running(one)
        let old = try #require(d.lastFork("www"))
        let two = CoreFixture.configuration(["www", "api"])
        d.reload(to: two, client: 7)
        let www = try #require(d.lastFork("www")), api = try #require(d.lastFork("api"))
        #expect(d.openListeners.contains(CoreFixture.pool("api").listen))
        d.ready(www)
        let failure = d.send(.report(api, .failed(reason: "plugin hello: preload: out of memory")))
        for pid in [www, api] { #expect(failure.order(.signalGroup(pid, .term), before: .signalGroup(pid, .kill))) }
        #expect(failure.contains(.closeOpenedListeners([CoreFixture.pool("api").listen])), "only the socket this reload opened")
        #expect(failure.answers == [CoreAnswer(client: 7, ok: false, text: "reload failed, rolled back: plugin hello: preload: out of memory")])
        #expect(failure.logged(.error, "still serving pool www gen 1"))
        #expect(!failure.contains(.retire(old)) && !failure.pids.contains(old), "the old generation is untouched")
        #expect(d.role(old) == .live && d.core.phase == .running && d.core.configuration == one)
        #expect(d.openListeners == [CoreFixture.pool("www").listen])
        #expect(d.exit(api, .exited(1)).effects == [.forgetPool("api")], "a pool in no configuration, with no host left")
        #expect(d.exit(www, .signaled(.kill, coreDumped: false)).effects.isEmpty)
        #expect(d.core.exitCode == 0)
    }

    @Test func aCandidateThatDiesOrCannotForkRollsBackTheReload() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        d.reload(client: 1)
        let died = d.exit(d.lastFork("www")!, .signaled(UnixSignal(SIGSEGV), coreDumped: false))
        #expect(died.answers.map { $0.ok } == [false] && died.logged(.error, "reload failed and was rolled back"))
        d.forkFailure = { _ in "fork: out of memory" }
        let failed = d.reload(client: 2)
        #expect(failed.answers == [CoreAnswer(client: 2, ok: false, text: "reload failed, rolled back: pool www: cannot start a host process: fork: out of memory")])
        #expect(d.live("www") == [old])
    }

    @Test func aReloadNotReadyWithinReloadTimeoutIsRolledBack() throws {
        var d = CoreDriver.running(CoreFixture.configuration(reloadTimeout: 10))
        let old = try #require(d.lastFork("www"))
        let started = d.now
        d.reload(client: 2)
        let new = try #require(d.lastFork("www"))
        #expect(d.core.nextDeadline == started.plus(10))
        let timeout = d.advanceToNextDeadline()
        #expect(timeout.contains(.signalGroup(new, .kill)))
        #expect(timeout.answers.first?.text == "reload failed, rolled back: the new generation was not ready within reload_timeout (10.0 s)")
        #expect(d.live("www") == [old])
        #expect(d.core.nextDeadline == d.now.plus(60), "only the rolled-back host's die_timeout is left")
    }

    @Test func aReloadDuringAReloadRereadsTheConfigurationAfterwards() throws {
        var d = CoreDriver.running()
        d.reload(client: 1)
        let second = try #require(d.lastFork("www"))
        let two = CoreFixture.configuration(["www", "api"])
        d.disk = .success(two) // the files change while the first reload runs
        #expect(d.reload(client: 2).effects.isEmpty, "one at a time")
        #expect(d.send(.signal(.usr2)).effects.isEmpty)
        let commit = d.ready(second)
        #expect(commit.answers.map { $0.client } == [1])
        #expect(commit.count(of: .readConfiguration) == 1, "the pending reload reads the files again")
        #expect(commit.forkedSpecs.map { "\($0.pool.name) \($0.generation)" } == ["www 3", "api 1"])
        #expect(d.history.count(of: .readConfiguration) == 2, "the two requests made while one ran are merged")
        let third = d.ready(d.lastFork("www")!) + d.ready(d.lastFork("api")!)
        #expect(third.answers.map { $0.client } == [2] && third.answers.allSatisfy { $0.ok })
        #expect(d.core.configuration == two && d.core.scaleTargets.isEmpty)
    }

    @Test func aReloadRequestedDuringARollbackRunsNext() throws {
        var d = CoreDriver.running()
        d.reload(client: 1)
        let doomed = try #require(d.lastFork("www"))
        d.reload(client: 2)
        let failure = d.send(.report(doomed, .failed(reason: "bad plugin")))
        #expect(failure.answers.map { $0.client } == [1])
        #expect(failure.count(of: .readConfiguration) == 1 && failure.forkedSpecs.count == 1)
        #expect(d.ready(d.lastFork("www")!).answers.map { "\($0.client) \($0.ok)" } == ["2 true"])
    }

    @Test func aConfigurationErrorIsAnsweredAndChangesNothing() throws {
        var d = CoreDriver.running()
        let old = try #require(d.lastFork("www"))
        let error = ConfigurationError(file: "/srv/forklift/conf.d/forklift.toml", key: "pool.www.max_children", "expected a positive integer")
        d.disk = .failure(error)
        let refused = d.reload(client: 3)
        #expect(refused.effects == [.readConfiguration, .answer(3, ok: false, "configuration error: \(error)")])
        #expect(refused.logged(.error, "reload refused, the running generations keep serving"))
        #expect(d.core.transaction == nil && !d.core.reloadPending && d.live("www") == [old])
        d.disk = .success(d.core.configuration)
        #expect(d.reload().forkedSpecs.count == 1, "the next reload is not blocked")
    }

    @Test func aReloadThatRemovesAPoolRetiresItsHostAndForgetsItsCounters() throws {
        var d = CoreDriver.running(CoreFixture.configuration(["www", "api"]))
        let oldWWW = try #require(d.lastFork("www")), oldAPI = try #require(d.lastFork("api"))
        d.reload(to: CoreFixture.configuration(["www"]))
        #expect(d.history.forkedSpecs.filter { $0.generation > 1 }.map(\.pool.name) == ["www"])
        let commit = d.ready(d.lastFork("www")!)
        #expect(commit.contains(.retire(oldAPI)) && commit.contains(.signalGroup(oldAPI, .term)) && commit.contains(.retire(oldWWW)))
        #expect(commit.contains(.closeListeners(keeping: [CoreFixture.pool("www").listen])))
        #expect(d.openListeners == [CoreFixture.pool("www").listen])
        #expect(!commit.contains(.forgetPool("api")), "its host still drains")
        #expect(d.exit(oldAPI).contains(.forgetPool("api")))
        #expect(!d.exit(oldWWW).contains(.forgetPool("www")))
    }

    /// A reload that changes listen_mode (or owner, group) gives the socket already open its
    /// new permissions at the commit; one rolled back leaves them as they were.
    @Test func socketPermissionsChangeAtTheCommitOnly() throws {
        var d = CoreDriver.running()
        var strict = CoreFixture.pool("www")
        strict.socketPermissions = SocketPermissions(mode: 0o600)
        let changed = CoreFixture.configuration([strict])
        d.reload(to: changed)
        let doomed = try #require(d.lastFork("www"))
        let failure = d.send(.report(doomed, .failed(reason: "bad plugin")))
        #expect(!failure.contains { if case .applySocketPermissions = $0 { true } else { false } })
        d.reload(to: changed)
        let commit = d.ready(try #require(d.lastFork("www")))
        #expect(commit.contains(.applySocketPermissions([strict])))
    }

    @Test func retiredHostsStillBusyAtDieTimeoutAreKilledWithoutChangingTheExitCode() throws {
        var d = CoreDriver.running(CoreFixture.configuration(dieTimeout: 15))
        let old = try #require(d.lastFork("www"))
        d.reload()
        d.ready(d.lastFork("www")!)
        let retiredAt = d.now
        #expect(d.core.nextDeadline == retiredAt.plus(15))
        let kill = d.advanceToNextDeadline()
        #expect(kill.contains(.signalGroup(old, .kill)) && kill.logged(.error, "still busy after die_timeout (15.0 s)"))
        #expect(d.core.exitCode == 0 && d.core.nextDeadline == nil)
    }
}

extension Array where Element == MasterCore.Action {
    var pids: [pid_t] { flatMap(\.pids) }
}
