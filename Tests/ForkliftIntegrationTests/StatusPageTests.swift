import Foundation
import ForkliftTestSupport
import Testing

@Suite(.serialized) struct StatusPageTests {
    /// The status page answers even while every worker is stuck in a slow request: on
    /// status_listen, answered by a process of its own, in every format, within 100 ms.
    @Test func statusListenAnswersInEveryFormatWhileEveryWorkerIsBusy() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2\nrequest_slowlog_timeout = \"1s\"\nall_busy_warning = \"1s\""))
        defer { server.shutdown() }
        // `hang` resumes its sleep after the slow log's stack capture interrupts it.
        let slow = (0..<2).map { _ in InBackground { try FastCGIClient.get(server.www, "/behaviors/hang", query: "ms=8000", timeout: 30) } } // long enough for a loaded machine
        let busy = try server.waitForStatus(server.statusSocket, "both workers running") { page in
            page.int("active processes") == 2 && page.processes.allSatisfy { $0["state"] as? String == "Running" }
        }
        #expect(busy.int("idle processes") == 0 && busy.int("total processes") == 2)
        #expect(busy.string("scoreboard") == "rr")
        for process in busy.processes {
            #expect(process["state"] as? String == "Running")
            #expect(process["request uri"] as? String == "/behaviors/hang?ms=8000")
            #expect(process["script"] as? String == "behaviors")
            #expect(process["request method"] as? String == "GET")
        }
        // A third client waits in the listen queue (a unix socket: measured with sock_diag).
        let queued = InBackground { try FastCGIClient.get(server.www, "/behaviors", timeout: 30) }
        try server.waitForLog("slow request: worker")
        try server.waitForLog("all 2 workers have been busy for")
        let waiting = try server.waitForStatus(server.statusSocket, "a connection in the listen queue") { $0.int("listen queue") >= 1 }
        #expect(waiting.int("listen queue len") == 511)
        #expect(waiting.int("max listen queue") >= 1)
        #expect(waiting.int("max children reached") >= 1, "counted once per episode")
        #expect(waiting.int("slow requests") == 2)
        #expect(waiting.string("scoreboard") == "ll", "POE's letters: long requests")

        for query in ["", "full", "json", "json&full", "openmetrics", "openmetrics&full", "html", "html&full"] {
            let started = Date()
            let response = try FastCGIClient.get(server.statusSocket, "/status", query: query, timeout: 2)
            let elapsed = Date().timeIntervalSince(started)
            #expect(response.status == 200, "?\(query)")
            #expect(elapsed < 0.1, "?\(query) answered in \(Int(elapsed * 1000)) ms")
            let body = response.bodyText
            switch query.split(separator: "&").first.map(String.init) ?? "" {
            case "json":
                let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
                #expect(object["pool"] as? String == "www")
                #expect((object["processes"] as? [Any])?.count == (query.contains("full") ? 2 : nil))
            case "openmetrics":
                #expect(response.headers.contains { $0.name == "Content-Type" && $0.value.hasPrefix("application/openmetrics-text") })
                try expectValidOpenMetrics(body, in: server.directory)
                #expect(body.contains("forklift_active_processes{pool=\"www\"} 2"))
            case "html":
                #expect(body.hasPrefix("<!DOCTYPE html>") && body.contains("<th>active processes</th><td>2</td>"))
            default:
                #expect(body.contains("active processes:     2\n"), "\(body)")
                #expect(body.contains("\npid:") == query.contains("full"))
            }
        }
        let ping = try FastCGIClient.get(server.statusSocket, "/ping", timeout: 2)
        #expect(ping.status == 200 && ping.bodyText == "pong")
        #expect(try FastCGIClient.get(server.statusSocket, "/behaviors", timeout: 2).status == 404, "no plugin answers on status_listen")
        for request in slow + [queued] { #expect(try #require(try request.wait()?.get()).status == 200) }
        try server.waitForLog("a worker is free again after")
    }

    @Test func statusAndPingPathsAnswerOnThePoolSocketToo() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let ping = try FastCGIClient.get(server.www, "/ping")
        #expect(ping.status == 200 && ping.bodyText == "pong")
        #expect(ping.headers.contains { $0.name == "Cache-Control" && $0.value.hasPrefix("no-cache") })
        let page = try PoolStatusPage.fetch(server.www)
        #expect(page.int("accepted conn") == 2, "the ping and this request")
        #expect(page.int("active processes") == 1, "the worker answering it is busy doing so")
        let me = try #require(page.processes.first)
        #expect(me["script"] as? String == "(status)")
        #expect(page.string("process manager") == "static")
    }

    @Test func forkliftStatusShowsGenerationsPoolsWorkersAndDumps() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2"))
        defer { server.shutdown() }
        _ = try server.waitForStatus(server.statusSocket, "two idle workers") { $0.int("idle processes") == 2 }
        let text = try server.command(["status"])
        #expect(text.status == 0)
        #expect(text.output.contains("pool www gen 1 live pid"), "\(text.output)")
        #expect(text.output.contains("idle processes:       2"), "\(text.output)")
        let json = try server.command(["status", "--json", "--full"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
        let pools = try #require(object["pools"] as? [[String: Any]])
        #expect(pools.first?["pool"] as? String == "www")
        #expect((pools.first?["processes"] as? [Any])?.count == 2)
        let watch = try server.command(["status", "--watch", "--count", "2", "--interval", "0.1"])
        #expect(watch.status == 0)
        let headers = watch.output.components(separatedBy: "\n").filter { $0.hasPrefix("PID ") && $0.contains(" STATE ") }
        #expect(headers.count == 2, "two tables: \(watch.output)")
        let dump = try server.command(["status", "--dump"])
        #expect(dump.status == 0 && dump.output.contains("state dumped to the log"))
        try server.waitForLog("dump: master: phase running")
        try server.waitForLog("dump: pool www gen 1 host")
        server.signal(SIGPWR)
        try server.waitForLog("SIGPWR received: dumping the state")
    }

    /// The bug this guards: 200 idle connections to the control socket delayed `forklift
    /// status` by 15 s.
    @Test func idleControlConnectionsDoNotDelayStatus() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let path = server.directory + "/forklift.sock"
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<200 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            idle.append(fd)
        }
        let started = Date()
        let status = try server.command(["status"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(status.status == 0, "\(status.output)")
        #expect(elapsed < 2, "answered in \(elapsed) s despite 200 idle connections")
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
    }
}

/// Parses OpenMetrics text with prometheus_client's strict parser (installed by scripts/test.sh).
func expectValidOpenMetrics(_ text: String, in directory: String) throws {
    let python = try #require(Command.find("python3"))
    let file = directory + "/metrics.txt"
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    let script = """
        import sys
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
        families = list(text_string_to_metric_families(open(sys.argv[1]).read()))
        print(len(families), "families")
        """
    let result = try Command.run(python, ["-c", script, file])
    #expect(result.status == 0, "prometheus_client rejected the OpenMetrics text: \(result.output)\n\(text)")
}
