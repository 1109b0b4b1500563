import Foundation
import ForkliftTestSupport
import Testing

/// A pool behind {dir}/www.sock with a status page on {dir}/status.sock, answered outside the workers.
func sizedPool(_ sizing: String, behaviorSettings: String = "", global: String = "", extra: String = "", logLevel: String = "info") -> String {
    """
    [global]
    pid = "{dir}/forklift.pid"
    log_level = "\(logLevel)"
    die_timeout = "10s"
    \(global)
    [pool.www]
    listen = "{dir}/www.sock"
    status_path = "/status"
    ping_path = "/ping"
    status_listen = "{dir}/status.sock"
    \(sizing)
    \(extra)
    [pool.www.plugin.behaviors]
    path = "{build}/libForkliftTestBehaviors.so"
    route = "/behaviors"
    settings = { \(behaviorSettings) }
    """
}

extension ForkliftServer {
    var www: FastCGIAddress { .unix(directory + "/www.sock") }
    var statusSocket: FastCGIAddress { .unix(directory + "/status.sock") }
}

@Suite(.serialized) struct PoolSizingTests {
    @Test func dynamicGrowsUnderABurstThenShrinksBackWithoutFlapping() throws {
        let server = try ForkliftServer(config: sizedPool("pm = \"dynamic\"\nmax_children = 8\nmin_spare_servers = 2\nmax_spare_servers = 4"))
        defer { server.shutdown() }
        _ = try server.waitForStatus(server.statusSocket, "start_servers (3) idle workers") { $0.int("total processes") == 3 }
        // Long enough that all eight are in flight together on a loaded machine.
        let burst = (0..<8).map { _ in InBackground { try FastCGIClient.get(server.www, "/behaviors/sleep", query: "ms=6000", timeout: 30) } }
        var largest = 0
        var samples = 0
        let grown = try server.waitForStatus(server.statusSocket, "8 workers") { page in
            samples += 1
            #expect(page.int("idle processes") + page.int("active processes") == page.int("total processes"))
            #expect(page.int("total processes") <= 8, "never more than max_children")
            largest = max(largest, page.int("total processes"))
            return page.int("total processes") == 8
        }
        #expect(grown.int("max children") == 8)
        for request in burst { #expect(try #require(try request.wait()?.get()).status == 200) }
        // Shrinks by one per second to max_spare_servers idle, then stays there.
        _ = try server.waitForStatus(server.statusSocket, "back to 4 idle workers") { page in
            #expect(page.int("total processes") <= 8)
            return page.int("total processes") == 4
        }
        #expect(server.log.contains("left after being idle (pm = dynamic)"))
        let settled = Date().addingTimeInterval(3)
        while Date() < settled {
            let page = try PoolStatusPage.fetch(server.statusSocket)
            #expect(page.int("total processes") == 4, "no flapping once within the spare bounds")
            usleep(200_000)
        }
        #expect(samples > 3 && largest == 8)
    }

    @Test func ondemandStartsWithNoWorkerServesAndReturnsToNone() throws {
        let server = try ForkliftServer(config: sizedPool("pm = \"ondemand\"\nmax_children = 3\nprocess_idle_timeout = \"1s\""))
        defer { server.shutdown() }
        // The probe that proved worker init has left.
        _ = try server.waitForStatus(server.statusSocket, "no worker") { $0.int("total processes") == 0 }
        #expect(server.workerPIDs().isEmpty)
        let response = try FastCGIClient.get(server.www, "/behaviors")
        #expect(response.status == 200)
        let page = try PoolStatusPage.fetch(server.statusSocket)
        #expect(page.int("total processes") == 1 && page.int("accepted conn") == 1)
        _ = try server.waitForStatus(server.statusSocket, "none again after process_idle_timeout") { $0.int("total processes") == 0 }
        try server.waitForLog("left after being idle (pm = ondemand)")
    }

    /// POE::Component::Daemon's post-fork mode: ondemand with max_requests = 1.
    @Test func postForkModeServesEachRequestInANewProcess() throws {
        let server = try ForkliftServer(config: sizedPool("pm = \"ondemand\"\nmax_children = 2\nmax_requests = 1"))
        defer { server.shutdown() }
        var pids: [String] = []
        for _ in 0..<5 {
            let response = try FastCGIClient.get(server.www, "/behaviors")
            #expect(response.status == 200)
            pids.append(response.bodyText)
        }
        #expect(Set(pids).count == 5, "five requests, five processes: \(pids)")
    }

    @Test func countsAreExactUnderConcurrentLoad() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 4"))
        defer { server.shutdown() }
        let clients = 4, each = 150
        let load = (0..<clients).map { _ in
            InBackground { () -> Int in
                var ok = 0
                for _ in 0..<each where (try? FastCGIClient.get(server.www, "/behaviors"))?.status == 200 { ok += 1 }
                return ok
            }
        }
        var sampled = 0
        while load.contains(where: { $0.wait(timeout: 0) == nil }) {
            let page = try PoolStatusPage.fetch(server.statusSocket)
            #expect(page.int("idle processes") + page.int("active processes") == page.int("total processes"))
            #expect(page.int("total processes") <= 4)
            sampled += 1
        }
        let served = try load.map { try #require(try $0.wait()?.get()) }.reduce(0, +)
        #expect(served == clients * each)
        let page = try PoolStatusPage.fetch(server.statusSocket)
        #expect(page.int("accepted conn") == clients * each, "every request counted once, status requests on status_listen not at all")
        #expect(page.int("max active processes") >= 1 && page.int("max active processes") <= 4)
        #expect(sampled > 0)
    }

    /// A pool whose worker init fails backs off, says so once, and recovers by itself once the
    /// cause is gone (today: 0 workers for 30 s, silent, status saying workers=3).
    @Test func aPoolWhoseWorkersDieAtStartBacksOffAndRecoversByItself() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2", behaviorSettings: "fail_worker_init_while = \"{dir}/broken\""))
        defer { server.shutdown() }
        let broken = server.directory + "/broken"
        _ = FileManager.default.createFile(atPath: broken, contents: nil)
        // Both workers die serving a request (replaced at once); their replacements cannot start.
        for _ in 0..<2 { #expect((try? FastCGIClient.get(server.www, "/behaviors/exit")) == nil) }
        try server.waitForLog("workers die right after they start")
        let down = try server.waitForStatus(server.statusSocket, "the back-off in the status") { $0.string("condition").hasPrefix("workers die right after starting") }
        #expect(down.int("total processes") < 2)
        let status = try server.command(["status"])
        #expect(status.output.contains("condition:            workers die right after starting"), "\(status.output)")
        try FileManager.default.removeItem(atPath: broken)
        try server.waitForLog("back to normal", timeout: 15)
        _ = try server.waitForStatus(server.statusSocket, "both workers back") { $0.int("total processes") == 2 && $0.string("condition") == "normal" }
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
        let lines = server.log.components(separatedBy: "\n").filter { $0.contains("workers die right after they start") }
        #expect(lines.count == 1, "one line per change of state: \(lines)")
    }

    @Test func scaleAndTTINTTOUChangeTheWorkerCount() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2"))
        defer { server.shutdown() }
        let scaled = try server.command(["scale", "www", "3"])
        #expect(scaled.status == 0, "\(scaled.output)")
        #expect(scaled.output.contains("pool www: 2 -> 3 workers"))
        _ = try server.waitForStatus(server.statusSocket, "3 workers") { $0.int("total processes") == 3 }
        server.signal(SIGTTOU)
        _ = try server.waitForStatus(server.statusSocket, "2 workers after TTOU") { $0.int("total processes") == 2 }
        // One at a time: two signals sent at once may arrive as one (as with gunicorn).
        server.signal(SIGTTIN)
        _ = try server.waitForStatus(server.statusSocket, "3 workers after TTIN") { $0.int("total processes") == 3 }
        server.signal(SIGTTIN)
        _ = try server.waitForStatus(server.statusSocket, "4 workers after another TTIN") { $0.int("total processes") == 4 }
        let refused = try server.command(["scale", "www", "5"])
        #expect(refused.status != 0 && refused.output.contains("expected 1 to 4 workers (twice max_children), got 5"), "\(refused.output)")
        #expect(try server.reload().status == 0)
        _ = try server.waitForStatus(server.statusSocket, "max_children again after a reload") { $0.int("total processes") == 2 && $0.int("generation") == 2 }
    }
}

@Suite(.serialized) struct PoolIsolationTests {
    /// PHP-FPM's emergency restart: workers dying of a signal make the master start a fresh
    /// host for the pool, which takes over once ready while the old one serves meanwhile.
    @Test func workersDyingOfASignalTriggerAnEmergencyRestart() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2",
                                                          global: "emergency_restart_threshold = 2\nemergency_restart_interval = \"30s\""))
        defer { server.shutdown() }
        let first = server.workerPIDs()
        #expect(first.count == 2)
        for pid in first { kill(pid, SIGSEGV) }
        try server.waitForLog("asks for an emergency restart (2 workers crashed within 30.0 s)")
        try server.waitForLog("pool www gen 2 (host pid")
        _ = try server.waitForStatus(server.statusSocket, "generation 2 serving") { $0.int("generation") == 2 && $0.int("total processes") == 2 }
        try server.waitForLog("pool www gen 1 (host pid", timeout: 1)
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
        let status = try server.command(["status"])
        #expect(status.output.contains("pool www gen 2 live"), "\(status.output)")
    }

    /// The bug this guards: the Swift runtime's backtracer returns from its handler, so a
    /// worker sent SIGABRT or SIGSEGV by another process printed a backtrace and kept serving.
    @Test(arguments: [SIGABRT, SIGSEGV, SIGILL])
    func aWorkerSentAFatalSignalDiesOfIt(signal: Int32) throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let victim = try #require(server.workerPIDs().first)
        kill(victim, signal)
        try server.waitForLog("worker \(victim) was killed by")
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200, "and is replaced")
    }

    /// A pool's workers can write nothing of another pool's scoreboard: each worker keeps only
    /// its own generation's board and its pool's counters mapped.
    @Test func aWorkerMapsOnlyItsOwnPoolsScoreboard() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1", extra: """
            [pool.other]
            listen = "{dir}/other.sock"
            max_children = 1
            [pool.other.plugin.behaviors]
            path = "{build}/libForkliftTestBehaviors.so"
            route = "/behaviors"
            """))
        defer { server.shutdown() }
        for socket in ["www.sock", "other.sock"] {
            let response = try FastCGIClient.get(.unix(server.directory + "/" + socket), "/behaviors/shared-maps")
            #expect(response.bodyText == "2 shared mappings\n", "\(socket): its board and its pool's counters only")
        }
        // A reload: the new generation's workers see only the new board.
        #expect(try server.reload().status == 0)
        #expect(try FastCGIClient.get(server.www, "/behaviors/shared-maps").bodyText == "2 shared mappings\n")
    }

    /// A worker that fills its own scoreboard slot with garbage crashes nothing and misleads
    /// nobody: the master and the host keep running, status still answers (and parses), the
    /// pool keeps serving.
    @Test func aWorkerScribblingItsOwnSlotHurtsNobody() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2"))
        defer { server.shutdown() }
        let hosts = Set(server.descendants().filter { $0.value.hasPrefix("forklift: host") }.keys)
        var scribbled = 0
        for _ in 0..<10 {
            // Once scribbled, a worker's slot no longer holds its pid: it cannot find it again.
            let answer = try FastCGIClient.get(server.www, "/behaviors/scribble-slot").bodyText
            #expect(answer == "scribbled my slot\n" || answer == "no slot found\n")
            if answer == "scribbled my slot\n" { scribbled += 1 }
            _ = try PoolStatusPage.fetch(server.statusSocket)
            let json = try server.command(["status", "--json", "--full"])
            #expect(json.status == 0)
            #expect((try? JSONSerialization.jsonObject(with: Data(json.output.utf8))) != nil, "\(json.output)")
        }
        #expect(scribbled >= 1)
        for _ in 0..<20 { #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200) }
        #expect(server.process.isRunning)
        #expect(Set(server.descendants().filter { $0.value.hasPrefix("forklift: host") }.keys) == hosts, "the host lives on")
        #expect(!server.log.contains("Fatal error"), "\(server.log)")
    }
}
