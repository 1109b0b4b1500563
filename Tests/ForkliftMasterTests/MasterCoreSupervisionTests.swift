import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// What systemd (and a `--daemonize` launcher) is told, from the core's state alone.
@Suite struct MasterCoreSupervisionTests {
    /// A supervised master, started: every pool's first host is ready.
    func supervised(watchdog: Double? = nil, _ configuration: Configuration = CoreFixture.configuration(),
                    isHandoff: Bool = false) -> CoreDriver {
        var d = CoreDriver(configuration, isHandoff: isHandoff)
        d.core.supervision = ServiceSupervision(watchdogSeconds: watchdog, now: d.now)
        return d
    }

    @Test func readyOnceTheFirstGenerationIsLiveNotBefore() throws {
        var d = supervised()
        #expect(d.send(.start).notices.isEmpty, "a host forked is not a pool served")
        let pid = try #require(d.lastFork("www"))
        let ready = d.ready(pid)
        #expect(ready.notices == [.ready(initial: true)])
        #expect(ready.order(.markLive(pid), before: .notifyService(.ready(initial: true))), "READY=1 once the workers may accept")
    }

    @Test func aReloadIsReloadingFromTheSignalUntilTheNewGenerationIsLive() throws {
        var d = supervised()
        d.send(.start)
        d.ready(try #require(d.lastFork("www")))
        d.advance(by: 5)
        let hup = d.reload()
        #expect(hup.notices == [.reloading(monotonicMicroseconds: d.now.nanoseconds / 1000)], "MONOTONIC_USEC is when it began")
        let candidate = try #require(d.lastFork("www"))
        #expect(d.ready(candidate).notices == [.ready(initial: false)])
    }

    @Test func aRolledBackOrRefusedReloadIsReadyAgain() throws {
        var d = supervised()
        d.send(.start)
        d.ready(try #require(d.lastFork("www")))
        d.disk = .failure(ConfigurationError(file: "/srv/forklift/conf.d/forklift.toml", key: "pool.www.max_children", "expected a positive integer"))
        let refused = d.reload()
        #expect(refused.notices.count == 2 && refused.notices.last == .ready(initial: false), "\(refused.notices)")

        d.disk = .success(CoreFixture.configuration())
        d.reload()
        let candidate = try #require(d.lastFork("www"))
        let failed = d.send(.report(candidate, .failed(reason: "plugin hello: preload failed")))
        #expect(failed.notices == [.ready(initial: false)])
    }

    @Test func aStopSaysStoppingOnce() throws {
        var d = supervised()
        d.send(.start)
        d.ready(try #require(d.lastFork("www")))
        #expect(d.send(.signal(.term)).notices == [.stopping])
        #expect(d.send(.signal(.term)).notices.isEmpty)
    }

    @Test func aFirstGenerationThatFailsTellsTheLauncherWhy() throws {
        var d = supervised()
        d.send(.start)
        let failed = d.send(.report(try #require(d.lastFork("www")), .failed(reason: "plugin hello: preload failed")))
        #expect(failed.notices.first == .stopping)
        guard case .startFailed(let reason)? = failed.notices.last else {
            Issue.record("no startFailed: \(failed.notices)")
            return
        }
        #expect(reason.contains("plugin hello: preload failed"), "\(reason)")
    }

    @Test func theWatchdogIsPettedEveryHalfIntervalAndTheStatusOnceASecond() throws {
        var d = supervised(watchdog: 2)
        d.send(.start)
        d.ready(try #require(d.lastFork("www")))
        let later = d.advance(by: 3.5)
        #expect(later.notices.filter { $0 == .watchdog }.count == 3, "at 1, 2 and 3 s: \(later.notices)")
        #expect(later.notices.filter { $0 == .status }.count == 3)
    }

    @Test func noTimerWithoutSupervision() throws {
        var d = CoreDriver.running()
        #expect(d.core.nextDeadline == nil)
        #expect(d.advance(by: 10).notices.isEmpty)
    }

    @Test func anUpgradesOldMasterHandsTheServiceOverWithoutStopping() throws {
        var d = supervised(watchdog: 2)
        d.send(.start)
        d.ready(try #require(d.lastFork("www")))
        let upgrade = d.send(.control(4, .upgrade))
        #expect(upgrade.notices.count == 1, "an upgrade is a reload to systemd: \(upgrade.notices)")
        d.waitingCounts = [1] // an old worker still waits at the first count
        #expect(d.send(.upgradeMessage(.ready)).notices.isEmpty)
        let go = d.advance(by: 0.9)
        #expect(go.notices == [.mainPID(d.upgradePID)], "no STOPPING=1: the service goes on in the new master")
        #expect(go.order(.notifyService(.mainPID(d.upgradePID)), before: .tellUpgrade(.go)), "systemd follows the new pid before it says READY=1")
        #expect(d.advance(by: 5).notices.isEmpty, "no watchdog nor status from a master that handed over")
    }

    @Test func anUpgradesNewMasterIsSilentUntilItServes() throws {
        var d = supervised(watchdog: 2, isHandoff: true)
        d.send(.start)
        let pid = try #require(d.lastFork("www"))
        #expect(d.ready(pid).notices.isEmpty && d.core.supervisionTimers().isEmpty)
        let go = d.send(.previousMasterMessage(.go))
        #expect(go.notices == [.ready(initial: true)], "MAINPID=<new> and READY=1")
        #expect(!d.core.supervisionTimers().isEmpty, "the watchdog is its own now")
    }
}

extension Array where Element == MasterCore.Action {
    var notices: [ServiceSupervision.Notice] { compactMap { if case .notifyService(let notice) = $0 { notice } else { nil } } }
}

@Suite struct ServiceStatusLineTests {
    @Test func countsEveryPool() {
        #expect(ServiceStatusLine.make(state: .ready, pools: [(4, 1, 1000), (4, 2, 234)], hosts: 2) == "ready: 2 pools, 8 workers (3 busy), 1234 requests")
        #expect(ServiceStatusLine.make(state: .reloading, pools: [(1, 0, 1)], hosts: 2) == "reloading: 1 pool, 1 worker (0 busy), 1 request")
        #expect(ServiceStatusLine.make(state: .stopping, pools: [], hosts: 1) == "stopping: 1 host left")
    }
}
