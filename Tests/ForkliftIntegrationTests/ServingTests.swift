import Foundation
import ForkliftTestSupport
import Testing

/// The pool most tests use: Hello, Echo and the misbehaving fixture behind one socket;
/// `pool` adds keys to `[pool.www]`.
func poolConfig(listen: String, children: Int = 2, maxRequests: Int = 0, dieTimeout: String = "10s", pool: String = "") -> String {
    """
    [global]
    pid = "{dir}/forklift.pid"
    log_level = "info"
    die_timeout = "\(dieTimeout)"
    [pool.www]
    listen = "\(listen)"
    max_children = \(children)
    max_requests = \(maxRequests)
    \(pool)
    [pool.www.plugin.hello]
    path = "{build}/libHello.so"
    route = "/hello"
    [pool.www.plugin.echo]
    path = "{build}/libEcho.so"
    route = "/echo"
    [pool.www.plugin.behaviors]
    path = "{build}/libForkliftTestBehaviors.so"
    route = "/behaviors"
    """
}

enum Transport: String, CaseIterable, CustomTestStringConvertible {
    case unix, tcp
    var testDescription: String { rawValue }

    var listen: String { self == .unix ? "{dir}/www.sock" : "127.0.0.1:0" }

    func address(_ server: ForkliftServer) throws -> FastCGIAddress {
        switch self {
        case .unix: return .unix(server.directory + "/www.sock")
        case .tcp: return .tcp(host: "127.0.0.1", port: try #require(server.tcpPort(pool: "www")))
        }
    }
}

@Suite(.serialized) struct ServingTests {
    @Test(arguments: Transport.allCases)
    func helloEchoAndNotFound(transport: Transport) throws {
        let server = try ForkliftServer(config: poolConfig(listen: transport.listen))
        defer { server.shutdown() }
        let address = try transport.address(server)

        let hello = try FastCGIClient.get(address, "/hello")
        #expect(hello.status == 200)
        #expect(hello.bodyText == "Hello, world!\n")
        #expect(hello.headers.contains { $0.name == "Content-Type" && $0.value == "text/plain; charset=utf-8" })

        // 1 MiB of every byte value, and params of every size class (1- and 4-byte lengths).
        let body = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let extra = [("HTTP_X_SHORT", "v"), ("HTTP_X_LONG", String(repeating: "L", count: 300)), ("HTTP_X_EMPTY", "")]
        let params = FastCGIClient.cgiParams(method: "POST", path: "/echo/upload", query: "a=1&b=2", bodyLength: body.count, extra: extra)
        let echo = try FastCGIClient.request(address, params: params, body: body)
        #expect(echo.status == 200)
        let text = echo.bodyText
        #expect(text.hasPrefix("method: POST\npath: /echo/upload\n"))
        for (name, value) in params {
            #expect(text.contains("\nparam: \(name)=\(value)\n"), "param \(name) missing from the echo")
        }
        // libfcgi adds FCGI_ROLE itself; everything else is ours, in our order.
        let paramLines = text.components(separatedBy: "\n").filter { $0.hasPrefix("param: ") && !$0.hasPrefix("param: FCGI_ROLE=") }
        #expect(paramLines == params.map { "param: \($0.0)=\($0.1)" }, "every param, in the order sent")
        #expect(text.contains("\nbody-length: \(body.count)\n\n"))
        #expect(Array(echo.body.suffix(body.count)) == body, "the 1 MiB body comes back intact")

        let missing = try FastCGIClient.get(address, "/nowhere")
        #expect(missing.status == 404)
        #expect(missing.bodyText.contains("no plugin of pool www is routed for /nowhere"))
        // Routes match whole path segments: /helloworld is not /hello.
        #expect(try FastCGIClient.get(address, "/helloworld").status == 404)
    }

    @Test func cgiFcgiFromLibfcgiBinGetsHello() throws {
        let cgiFcgi = try #require(Command.find("cgi-fcgi"), "cgi-fcgi (Debian's libfcgi-bin) is needed")
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock"))
        defer { server.shutdown() }
        let result = try Command.run(cgiFcgi, ["-bind", "-connect", server.directory + "/www.sock"],
                                     environment: ["SCRIPT_NAME": "/hello", "REQUEST_METHOD": "GET"])
        #expect(result.status == 0)
        #expect(result.output.contains("Status: 200 OK"))
        #expect(result.output.contains("Hello, world!"))
    }

    /// docs/examples/hello_c.c, built with the system C compiler: the ABI is usable from C alone.
    @Test func theCExampleFromTheABIDocsServes() throws {
        let directory = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let plugin = try buildCPlugin([try cExampleSource()], in: directory)

        let config = poolConfig(listen: "{dir}/www.sock", children: 1) + """

            [pool.www.plugin.c]
            path = "\(plugin)"
            route = "/c"
            settings = { greeting = "Bonjour" }
            """
        let c = try ForkliftServer(config: config)
        defer { c.shutdown() }
        let address = FastCGIAddress.unix(c.directory + "/www.sock")
        #expect(try FastCGIClient.get(address, "/c/one").bodyText == "Bonjour from C! GET /c/one (request 1 of this worker)\n")
        #expect(try FastCGIClient.get(address, "/c/two").bodyText == "Bonjour from C! GET /c/two (request 2 of this worker)\n")
        #expect(c.log.contains("hello_c preloaded plugin=c"))
    }

    @Test func aThrowingPluginGivesA500AndTheWorkerGoesOn() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 1))
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let before = try FastCGIClient.get(address, "/behaviors/pid").bodyText

        let failed = try FastCGIClient.get(address, "/behaviors/throw")
        #expect(failed.status == 500)
        #expect(failed.bodyText == "500 Internal Server Error\n", "the body is generic: no internals leak to clients")
        try server.waitForLog("plugin behaviors failed on /behaviors/throw: thrown on purpose by /throw")

        let after = try FastCGIClient.get(address, "/behaviors/pid").bodyText
        #expect(after == before, "the same worker serves on")
    }

    /// A worker hands every request to its plugin through the same two bridges (begun again
    /// per request, not made anew): nothing of a request's status, headers or path is left for
    /// the next one on the same worker.
    @Test func eachRequestOnAWorkerStartsFromNothing() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 1))
        defer { server.shutdown() }
        let connection = try KeptConnection(.unix(server.directory + "/www.sock"))
        defer { connection.close() }
        func get(script: String, pathInfo: String = "") throws -> FastCGIResponse {
            try connection.request(params: [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", script), ("PATH_INFO", pathInfo),
                                            ("REQUEST_URI", script + pathInfo), ("QUERY_STRING", "")], keepConnection: true)
        }
        let plain = try get(script: "/hello")
        #expect(plain.status == 200 && plain.bodyText == "Hello, world!\n")
        let headers = plain.headers.map(\.name)
        // Each response in turn sets a status and headers (a 500, a 404), or routes by a path
        // the worker builds itself (SCRIPT_NAME + PATH_INFO); the plain one after it is as the first.
        for (script, pathInfo, status) in [("/behaviors", "/throw", 500), ("/nowhere", "", 404), ("/behaviors", "/pid", 200)] {
            #expect(try get(script: script, pathInfo: pathInfo).status == status, "\(script)\(pathInfo)")
            let after = try get(script: "/hello")
            #expect(after.status == 200 && after.bodyText == "Hello, world!\n", "after \(script)\(pathInfo)")
            #expect(after.headers.map(\.name) == headers, "after \(script)\(pathInfo): \(after.headerText)")
        }
    }

    @Test func headerValuesWithCRLFAreRefused() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 1))
        defer { server.shutdown() }
        let response = try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/behaviors/inject")
        #expect(response.bodyText == "refused\n")
        #expect(!response.headers.contains { $0.name == "Set-Cookie" })
    }

    @Test func aStormOfUSR1KillsNoWorker() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 2, maxRequests: 1))
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        // Workers retire after every request, so new ones are forked all the time: USR1 must
        // never reach one before its handlers are in place.
        for _ in 0..<100 {
            server.signal(SIGUSR1)
            #expect(try FastCGIClient.get(address, "/hello").status == 200)
        }
        #expect(!server.log.contains("was killed by"), "\(server.log.components(separatedBy: "\n").filter { $0.contains("killed") }.prefix(3))")
    }

    @Test func recyclingAfterMaxRequests() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 2, maxRequests: 5))
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        var pids: Set<String> = []
        for index in 0..<50 {
            let response = try FastCGIClient.get(address, "/echo/\(index)")
            #expect(response.status == 200)
            let pid = response.bodyText.components(separatedBy: "\n").first { $0.hasPrefix("pid: ") }
            pids.insert(try #require(pid))
        }
        // 50 requests at 5 per worker: at least 10 workers; 8 leaves room for scheduling.
        #expect(pids.count >= 8, "only \(pids.count) distinct workers served 50 requests")
        #expect(server.log.contains("retired after serving its requests"))
        // Replaced when it said it was leaving, not once it was reaped (PoolCore.workerLeaving).
        #expect(server.log.contains("its replacement was started as it left"))
    }

    @Test func processTitlesNameRolePoolAndGeneration() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 2))
        defer { server.shutdown() }
        #expect(ProcessTable.title(of: server.pid) == "forklift: master")
        let titles = server.descendants().values.sorted()
        #expect(titles == ["forklift: host pool=www gen=1", "forklift: worker pool=www gen=1", "forklift: worker pool=www gen=1"])
    }

    @Test func aKilledWorkerIsReplaced() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 2))
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let before = server.workerPIDs()
        #expect(before.count == 2)
        let victim = try #require(before.first)
        kill(victim, SIGKILL)

        let replaced = ForkliftServer.eventually {
            let now = server.workerPIDs()
            return now.count == 2 && !now.contains(victim)
        }
        #expect(replaced, "workers now: \(server.workerPIDs()), killed \(victim)")
        try server.waitForLog("worker \(victim) was killed by SIGKILL")
        for _ in 0..<10 {
            #expect(try FastCGIClient.get(address, "/hello").bodyText == "Hello, world!\n")
        }
    }
}
