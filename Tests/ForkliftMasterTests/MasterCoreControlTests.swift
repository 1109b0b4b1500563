import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

/// Control commands, scaling by command and signal, dumps, log reopening.
@Suite struct MasterCoreControlTests {
    let two = CoreFixture.configuration([CoreFixture.pool("www", maxChildren: 4), CoreFixture.pool("api", maxChildren: 1)])

    @Test func controlLinesParse() {
        let table: [(String, ControlRequest)] = [
            ("reload", .reload), ("stop", .stop), ("upgrade", .upgrade), ("dump", .dump),
            ("status", .status(StatusQuery())),
            ("status json", .status(StatusQuery(json: true, full: false))),
            ("status full", .status(StatusQuery(json: false, full: true))),
            ("status json full", .status(StatusQuery(json: true, full: true))),
            ("status full json", .status(StatusQuery(json: true, full: true))),
            ("scale www 3", .scale(pool: "www", workers: 3)),
            ("scale www -1", .scale(pool: "www", workers: -1)),
            ("scale www three", .unknown("scale www three")),
            ("scale www", .unknown("scale www")),
            ("scale www 3 4", .unknown("scale www 3 4")),
            ("status verbose", .unknown("status verbose")),
            ("reload now", .unknown("reload now")),
            ("stop please", .unknown("stop please")),
            ("", .unknown("")),
            ("garbage", .unknown("garbage")),
            ("RELOAD", .unknown("RELOAD")),
        ]
        for (line, expected) in table { #expect(ControlRequest(line: line) == expected, "\"\(line)\"") }
    }

    @Test func statusIsAnsweredByTheShell() {
        var d = CoreDriver.running(two)
        let query = StatusQuery(json: true, full: true)
        #expect(d.send(.control(3, .status(query))) == [.answerStatus(3, query)])
    }

    @Test func anUnknownCommandIsAnsweredWithTheListOfCommands() {
        var d = CoreDriver.running(two)
        let answer = d.send(.control(3, ControlRequest(line: "frobnicate now")))
        #expect(answer == [.answer(3, ok: false, "unknown command \"frobnicate now\"; expected reload, stop, upgrade, dump, status [json] [full], or scale POOL N")])
        #expect(d.core.phase == .running)
    }

    @Test(arguments: [("api2", "no pool \"api2\" (the pools are: www, api)"),
                      ("www 0", "pool www: expected 1 to 8 workers (twice max_children), got 0"),
                      ("www 9", "pool www: expected 1 to 8 workers (twice max_children), got 9"),
                      ("api 3", "pool api: expected 1 to 2 workers (twice max_children), got 3"),
                      ("www -2", "pool www: expected 1 to 8 workers (twice max_children), got -2")])
    func aScaleOutsideTheLimitsIsRefused(request: String, error: String) {
        var d = CoreDriver.running(two)
        let words = request.split(separator: " ")
        let workers = words.count > 1 ? Int(words[1])! : 2
        #expect(d.send(.control(5, .scale(pool: String(words[0]), workers: workers))) == [.answer(5, ok: false, error)])
        #expect(d.core.scaleTargets.isEmpty)
    }

    @Test func aScaleIsWrittenToThePoolsLiveHost() throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www"))
        let message = "pool www: 4 -> 8 workers (forklift scale); until the next reload"
        #expect(d.send(.control(5, .scale(pool: "www", workers: 8))) == [.log(.notice, message), .setScaleTarget(www, 8), .answer(5, ok: true, message)])
        #expect(d.core.scaleTargets == ["www": 8])
        #expect(d.send(.control(5, .scale(pool: "www", workers: 1))).answers.first?.text == "pool www: 8 -> 1 workers (forklift scale); until the next reload")
    }

    @Test func aDynamicPoolIsScaledAsMaxChildren() throws {
        var pool = CoreFixture.pool("www")
        pool.processManager = .dynamic
        var d = CoreDriver.running(CoreFixture.configuration([pool]))
        #expect(d.send(.control(5, .scale(pool: "www", workers: 6))).answers.first?.text == "pool www: 4 -> 6 as max_children (forklift scale); until the next reload")
    }

    @Test func ttinAndTtouMoveEveryPoolByOneWithinTheLimits() throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www")), api = try #require(d.lastFork("api"))
        #expect(d.send(.signal(.ttin)).effects == [.setScaleTarget(www, 5), .setScaleTarget(api, 2)])
        let atLimit = d.send(.signal(.ttin))
        #expect(atLimit.effects == [.setScaleTarget(www, 6)])
        #expect(atLimit.logged(.warning, "SIGTTIN: pool api stays at 2 (the limits are 1 and 2)"))
        #expect(d.send(.signal(.ttou)).effects == [.setScaleTarget(www, 5), .setScaleTarget(api, 1)])
        let atFloor = d.send(.signal(.ttou))
        #expect(atFloor.effects == [.setScaleTarget(www, 4)])
        #expect(atFloor.logged(.warning, "SIGTTOU: pool api stays at 1 (the limits are 1 and 2)"))
        #expect(d.core.scaleTargets == ["www": 4, "api": 1])
    }

    @Test func aScaleDuringAReloadReachesTheLiveHostButNotTheCandidate() throws {
        var d = CoreDriver.running(two)
        let old = try #require(d.lastFork("www"))
        d.reload()
        let candidate = try #require(d.lastFork("www"))
        #expect(d.send(.control(1, .scale(pool: "www", workers: 3))).effects == [.setScaleTarget(old, 3), .answer(1, ok: true, "pool www: 4 -> 3 workers (forklift scale); until the next reload")])
        d.send(.report(candidate, .failed(reason: "no")))
        #expect(d.send(.control(1, .scale(pool: "www", workers: 2))).effects.first == .setScaleTarget(old, 2), "the rolled-back candidate drains")
    }

    @Test func aReloadStartsFromTheConfigurationButAReplacementKeepsTheScale() throws {
        var d = CoreDriver.running(two)
        d.send(.control(1, .scale(pool: "www", workers: 7)))
        d.exit(d.lastFork("www")!, .signaled(.kill, coreDumped: false))
        let replacement = try #require(d.lastFork("www"))
        #expect(d.spec(of: replacement)?.scaleTarget == 7, "the pool keeps the size it was given")
        d.ready(replacement)

        d.reload()
        let candidate = try #require(d.lastFork("www"))
        #expect(d.spec(of: candidate)?.scaleTarget == 0)
        d.ready(candidate)
        d.ready(d.lastFork("api")!)
        #expect(d.core.scaleTargets.isEmpty)
        #expect(d.send(.signal(.ttin)).contains(.setScaleTarget(candidate, 5)), "4 + 1: from max_children again")
    }

    @Test func aDumpListsTheMastersStateAndTimers() throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www"))
        let dump = d.send(.signal(.dump))
        let dumps = dump.compactMap { action -> [String]? in if case .dump(let lines) = action { lines } else { nil } }
        guard let lines = dumps.first, dumps.count == 1 else {
            Issue.record("expected one dump, got \(dump)")
            return
        }
        #expect(dump.contains(.log(.notice, "SIGPWR received: dumping the state of master, hosts and workers")))
        #expect(lines.first == "master: phase running, owns its files, 2 hosts, generations api=1 www=1")
        #expect(lines.contains("master: pool www gen 1 (host pid \(www)): live, started 0.0 s ago, ready"))

        d.reload(client: 2)
        d.send(.control(1, .scale(pool: "www", workers: 3)))
        d.advance(by: 1.5)
        let during = d.send(.control(4, .dump))
        #expect(during.last == .answer(4, ok: true, "state dumped to the log"))
        guard case .dump(let more)? = during.first else { return }
        #expect(more.contains { $0.hasPrefix("master: reload in flight for 1.5 s, candidates api=") })
        #expect(more.contains("master: pool www scaled to 3"))
        #expect(more.contains("master: timer reloadTimeout in 58.5 s"))
    }

    @Test func usr1ReopensTheLogsAndTellsEveryHost() throws {
        var d = CoreDriver.running(two)
        let www = try #require(d.lastFork("www")), api = try #require(d.lastFork("api"))
        let reopen = d.send(.signal(.usr1))
        #expect(reopen.effects == [.reopenLogs, .signal(www, .usr1), .signal(api, .usr1)])
        #expect(d.send(.signal(.chld)).isEmpty, "the shell reaps anyway")
    }
}
