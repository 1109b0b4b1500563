import Foundation
import ForkliftTestSupport
import Testing

/// What one request can do to the others: crash records, plugin threads and signals.
@Suite(.serialized) struct RequestGuardTests {
    /// A worker that dies in the middle of a request is logged with the request it served
    /// (from its scoreboard slot), and replaced at once.
    @Test func aCrashInTheMiddleOfARequestNamesTheRequest() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let victim = try #require(server.workerPIDs().first)
        let slow = InBackground { try FastCGIClient.get(server.www, "/behaviors/sleep", query: "ms=5000", timeout: 30) }
        _ = try server.waitForStatus(server.statusSocket, "the request running") { $0.processes.first?["state"] as? String == "Running" }
        kill(victim, SIGSEGV)
        try server.waitForLog("worker \(victim) was killed by SIGSEGV")
        try server.waitForLog("in the middle of a request: GET /behaviors/sleep?ms=5000 (plugin behaviors, ")
        #expect((try? slow.wait()?.get()) == nil, "that request fails")
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200, "the next one is served by its replacement")
    }

    /// Threads a plugin starts in worker init never receive the signals the worker handles:
    /// they would interrupt the threads' system calls.
    @Test func threadsStartedInWorkerInitHaveTheWorkersSignalsBlocked() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1", behaviorSettings: "worker_thread = true"))
        defer { server.shutdown() }
        let worker = try #require(server.workerPIDs().first)
        let threads = ProcessTable.threads(of: worker).filter { $0 != worker }
        #expect(!threads.isEmpty, "the plugin's thread")
        for thread in threads {
            let mask = try #require(blockedSignals(worker, thread: thread))
            for signal in [SIGTERM, SIGINT, SIGQUIT, SIGUSR1] {
                #expect(mask & (UInt64(1) << UInt64(signal - 1)) != 0, "signal \(signal) blocked in thread \(thread): mask \(String(mask, radix: 16))")
            }
        }
        let main = try #require(blockedSignals(worker, thread: worker))
        #expect(main & (UInt64(1) << UInt64(SIGTERM - 1)) != 0, "the main thread reads TERM from its signalfd, never by a handler")
        #expect(main & (UInt64(1) << UInt64(SIGPWR - 1)) == 0, "the stack dump signal is delivered (the slow log)")
        // And a TERM still stops the worker (its loop reads it).
        kill(worker, SIGTERM)
        try server.waitForLog("worker \(worker) retired")
    }
}

/// SigBlk of one thread, from /proc.
func blockedSignals(_ pid: pid_t, thread: pid_t) -> UInt64? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/status", encoding: .utf8),
          let line = status.components(separatedBy: "\n").first(where: { $0.hasPrefix("SigBlk:") }) else { return nil }
    return UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16)
}

@Suite(.serialized) struct ScoreboardTruthTests {
    /// A worker between requests on a kept connection takes no new connection: the status says
    /// so (Keepalive, active), and an ondemand pool forks another worker for a new client
    /// instead of waiting for the kept one.
    @Test func aWorkerOnAKeptConnectionIsNotIdle() throws {
        let server = try ForkliftServer(config: sizedPool("pm = \"ondemand\"\nmax_children = 2\nprocess_idle_timeout = \"30s\"", logLevel: "debug"))
        defer { server.shutdown() }
        _ = try server.waitForStatus(server.statusSocket, "no worker") { $0.int("total processes") == 0 }
        let kept = try KeptConnection(server.www)
        let first = try kept.get("/behaviors")
        #expect(first.status == 200)
        let page = try server.waitForStatus(server.statusSocket, "the kept worker") { $0.processes.contains { $0["state"] as? String == "Keepalive" } }
        #expect(page.int("active processes") == 1 && page.int("idle processes") == 0)
        #expect(page.string("scoreboard").contains("k"))
        // Another client: a second worker, not a wait for the kept one.
        let other = try FastCGIClient.get(server.www, "/behaviors", timeout: 5)
        #expect(other.status == 200)
        _ = try server.waitForStatus(server.statusSocket, "a second worker forked for the new client") { $0.int("total processes") == 2 }
        // It serves the new client, unless its fork took longer than the kept worker waits
        // (100 ms, on a loaded machine): then the kept worker made way, and said so.
        let madeWay = other.bodyText == first.bodyText
        if madeWay {
            #expect(server.log.contains("giving up an idle kept connection: a new client waits and no worker is free"))
        } else {
            #expect(try kept.get("/behaviors").bodyText == first.bodyText, "the kept connection still has its worker")
        }
        kept.close()
        _ = try server.waitForStatus(server.statusSocket, "idle once the client closes") { page in
            page.processes.allSatisfy { $0["state"] as? String == "Idle" }
        }
    }

    /// Idle kept connections can never starve the pool: with every worker on one (nginx's
    /// upstream keepalive pool larger than the pool), a new client is served by a worker that
    /// gives its idle kept connection up.
    @Test func keptConnectionsYieldToANewClientWhenNoWorkerIsFree() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2\nkeepalive_timeout = \"60s\""))
        defer { server.shutdown() }
        let kept = try (0..<2).map { _ in try KeptConnection(server.www) }
        let pids = try Set(kept.map { try $0.get("/behaviors").bodyText })
        #expect(pids.count == 2, "each kept connection holds a worker")
        _ = try server.waitForStatus(server.statusSocket, "both workers kept") { $0.processes.filter { $0["state"] as? String == "Keepalive" }.count == 2 }
        let started = Date()
        let other = try FastCGIClient.get(server.www, "/behaviors", timeout: 5)
        #expect(other.status == 200)
        #expect(Date().timeIntervalSince(started) < 1, "served at once, not after keepalive_timeout")
        // The one that gave way was parked with the master, not closed: both still serve.
        let stillServed = kept.filter { (try? $0.get("/behaviors"))?.status == 200 }
        #expect(stillServed.count == 2, "no kept connection was closed under its client")
    }

    /// keepalive_timeout: an idle kept connection is closed after it.
    @Test func anIdleKeptConnectionIsClosedAfterKeepaliveTimeout() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nkeepalive_timeout = \"300ms\"", logLevel: "debug"))
        defer { server.shutdown() }
        let kept = try KeptConnection(server.www)
        #expect(try kept.get("/behaviors").status == 200)
        try server.waitForLog("closing a kept connection idle for 0.3 s (keepalive_timeout)")
        _ = try server.waitForStatus(server.statusSocket, "the worker idle again") { $0.processes.first?["state"] as? String == "Idle" }
    }

    /// The bug this guards: a worker killed while waiting for a connection left the
    /// generation's waiting counter up for good, so every later switch waited 200 ms and went
    /// live without the strict guarantee.
    @Test func aWorkerKilledWhileWaitingDoesNotStallTheNextSwitch() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2"))
        defer { server.shutdown() }
        let first = server.workerPIDs()
        for pid in first { kill(pid, SIGKILL) }
        _ = try server.waitForStatus(server.statusSocket, "two new idle workers") { page in
            page.int("idle processes") == 2 && page.pids.isDisjoint(with: first)
        }
        #expect(try server.reload().status == 0)
        #expect(!server.log.contains("still counted as waiting"), "\(server.log)")
    }

    /// The bug this guards: libfcgi's FCGX_Accept_r, when a connection's first records fail,
    /// accepted the next connection itself (without timeouts) and the responder hung on it.
    @Test func statusListenSurvivesABrokenAndAStalledClient() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let path = server.directory + "/status.sock"
        let broken = try rawConnection(path)
        close(broken) // the first read sees the end
        let stalled = try rawConnection(path)
        defer { close(stalled) }
        _ = send(stalled, [1], 1, 0) // one byte, then nothing
        let started = Date()
        let page = try PoolStatusPage.fetch(server.statusSocket, timeout: 10)
        #expect(page.string("pool") == "www")
        #expect(Date().timeIntervalSince(started) < 5, "answered after the stalled client's timeout at most")
        // A client that keeps sending after its answer does not hold the responder either.
        let trickler = try rawConnection(path)
        defer { close(trickler) }
        #expect(try PoolStatusPage.fetch(server.statusSocket, timeout: 10).string("pool") == "www")
    }

    /// "last request cpu" is the last request's, not everything since the worker started.
    @Test func lastRequestCPUIsPerRequest() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        for _ in 0..<20 { #expect(try FastCGIClient.get(server.www, "/behaviors/sleep", query: "ms=20").status == 200) }
        let page = try PoolStatusPage.fetch(server.statusSocket)
        let cpu = try #require((page.processes.first?["last request cpu"] as? NSNumber)?.doubleValue)
        #expect(cpu >= 0 && cpu < 50, "a request that sleeps uses little CPU: \(cpu) %")
    }
}

/// A unix socket connection with nothing sent.
func rawConnection(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    let result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    guard result == 0 else { throw FastCGIError("connect \(path) failed") }
    return fd
}

/// The slow log and request_terminate_timeout, with the worker's own stack (no ptrace), and
/// crash records with the plugin's frames named.
@Suite(.serialized) struct StackTests {
    /// Run where ptrace(2) and process_vm_readv(2) fail (a seccomp filter, as a container's
    /// profile denies them; php-fpm's slowlog fails there).
    @Test func aSlowRequestIsLoggedOnceWithThePluginFunctionItIsIn() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nrequest_slowlog_timeout = \"500ms\"\nslowlog = \"{dir}/slow.log\""),
                                        launcher: ["{build}/forklift-test-without-ptrace"])
        defer { server.shutdown() }
        let worker = try #require(server.workerPIDs().first)
        let status = try String(contentsOfFile: "/proc/\(worker)/status", encoding: .utf8)
        #expect(status.contains("Seccomp:\t2") && status.contains("NoNewPrivs:\t1"), "the worker runs under the filter")
        let response = try FastCGIClient.get(server.www, "/behaviors/hang", query: "ms=2000", timeout: 10)
        #expect(response.status == 200 && response.bodyText == "hung 2000 ms\n", "it is not stopped")
        try server.waitForLog("slow request: worker")
        let slowlog = server.directory + "/slow.log"
        #expect(ForkliftServer.eventually { ((try? String(contentsOfFile: slowlog, encoding: .utf8)) ?? "").contains("its stack:") })
        let record = try String(contentsOfFile: slowlog, encoding: .utf8)
        #expect(record.contains("[pool www gen 1] pool www: slow request: worker"), "\(record)")
        #expect(record.contains("GET /behaviors/hang?ms=2000 (plugin behaviors)"), "\(record)")
        #expect(record.contains("Behaviors.handle("), "the plugin's function, named: \(record)")
        #expect(record.contains("(plugin behaviors: libForkliftTestBehaviors.so)"), "\(record)")
        #expect(record.components(separatedBy: "slow request:").count == 2, "once per request")
        let page = try PoolStatusPage.fetch(server.statusSocket)
        #expect(page.int("slow requests") == 1)
    }

    @Test func aRequestPastRequestTerminateTimeoutIsKilledAndReplaced() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nrequest_terminate_timeout = \"1s\"", extra: """
            [pool.www.plugin.hello]
            path = "{build}/libHello.so"
            route = "/hello"
            request_terminate_timeout = 0
            """))
        defer { server.shutdown() }
        let victim = try #require(server.workerPIDs().first)
        let started = Date()
        #expect(throws: (any Error).self, "the client's connection closes") {
            try FastCGIClient.get(server.www, "/behaviors/hang", query: "ms=10000", timeout: 20)
        }
        #expect(Date().timeIntervalSince(started) < 4, "killed after the timeout, not after the 10 s")
        try server.waitForLog("past request_terminate_timeout (1.0 s): killing it")
        try server.waitForLog("GET /behaviors/hang?ms=10000 (plugin behaviors) for 1.")
        try server.waitForLog("Behaviors.handle(")
        try server.waitForLog("worker \(victim) was killed for running past request_terminate_timeout; replacing it")
        #expect(try FastCGIClient.get(server.www, "/hello").status == 200, "its replacement serves")
    }

    /// A crash in a handler (a Swift trap, a bad pointer, abort): the log names the signal, the
    /// pool, plugin, method, URI and the plugin's function; nothing of it reaches the client;
    /// the pool answers again at once.
    @Test(arguments: [("trap", "SIGILL"), ("segv", "SIGSEGV"), ("abort", "SIGABRT")])
    func aCrashInAHandlerIsRecordedWithItsFrames(endpoint: String, signal: String) throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2"))
        defer { server.shutdown() }
        let slow = InBackground { try FastCGIClient.get(server.www, "/behaviors/hang", query: "ms=1500", timeout: 20) }
        _ = try server.waitForStatus(server.statusSocket, "the slow request running") { $0.int("active processes") == 1 }
        let crashed = Date()
        #expect(throws: (any Error).self) { try FastCGIClient.get(server.www, "/behaviors/\(endpoint)", timeout: 10) }
        var answeredAfter: Double?
        while Date().timeIntervalSince(crashed) < 5 {
            if (try? FastCGIClient.get(server.www, "/behaviors", timeout: 1))?.status == 200 {
                answeredAfter = Date().timeIntervalSince(crashed)
                break
            }
        }
        print("crash (\(endpoint)): the pool answered again after \(answeredAfter.map { String(format: "%.3f", $0) } ?? "-") s")
        #expect(try #require(answeredAfter) < 0.1, "the pool answers again within 100 ms (here \(answeredAfter ?? -1) s)")
        try server.waitForLog("crashed (\(signal)); its stack:")
        try server.waitForLog("in the middle of a request: GET /behaviors/\(endpoint) (plugin behaviors")
        #expect(server.log.contains("Behaviors.handle("), "\(server.log)")
        #expect(try #require(try slow.wait()?.get()).bodyText == "hung 1500 ms\n", "the request on the other worker completes")
    }
}
