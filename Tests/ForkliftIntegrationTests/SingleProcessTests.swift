import Foundation
import ForkliftTestSupport
import Testing

/// `forklift run --single-process`: the whole pool in one process, for a debugger.
@Suite struct SingleProcessTests {
    static let ready = "in a single process (pid "

    @Test func oneProcessLoadsServesAndStopsOnInt() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", maxRequests: 1),
                                        waitUntilReady: false, runArguments: ["--single-process"])
        defer { server.shutdown() }
        try server.waitForLog(Self.ready + "\(server.pid)) on \(server.directory)/www.sock; not applied here: max_requests")
        #expect(server.descendants().isEmpty, "no host, no workers")
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        for _ in 0..<3 {
            // max_requests = 1 does not recycle the only process.
            let echo = try FastCGIClient.get(address, "/echo/x")
            #expect(echo.bodyText.contains("pid: \(server.pid)\n"), "served by the process itself: \(echo.bodyText.prefix(80))")
        }
        #expect(try FastCGIClient.get(address, "/hello").bodyText == "Hello, world!\n")
        server.signal(SIGINT)
        #expect(server.waitForExit(timeout: 10) == 0)
        #expect(server.log.contains("single process leaving: stop requested after 4 request(s)"))
        #expect(!FileManager.default.fileExists(atPath: server.directory + "/www.sock"), "its socket is removed")
    }

    @Test func anUnknownPoolIsAnError() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock"), waitUntilReady: false,
                                        runArguments: ["--single-process", "--pool", "nope"])
        defer { server.shutdown() }
        #expect(server.waitForExit(timeout: 20) == 1)
        #expect(server.log.contains("single process: no pool nope in the configuration (pools: www)"))
    }

    /// What it is for: gdb stops at a breakpoint in the plugin's handler (loaded from its
    /// own file, so the debugger has its symbols).
    @Test func gdbStopsAtABreakpointInAPluginsHandler() throws {
        let gdb = try #require(Command.find("gdb"), "gdb is installed by scripts/install-deps.sh --tests")
        let source = ForkliftServer.packageRoot + "/Plugins/Echo/Echo.swift"
        let lines = try String(contentsOfFile: source, encoding: .utf8).components(separatedBy: "\n")
        let line = try #require(lines.firstIndex { $0.contains("var head = \"method:") }) + 1
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock"), waitUntilReady: false, launcher: [
            gdb, "-batch", "-nx", "-iex", "set complaints 0", "-iex", "set debuginfod enabled off", "-ex", "set breakpoint pending on",
            "-ex", "break Echo.swift:\(line)", "-ex", "run", "-ex", "bt 3", "-ex", "kill", "--args",
        ], runArguments: ["--single-process"])
        defer { server.shutdown() }
        try server.waitForLog(Self.ready, timeout: 120) // gdb reads the debug build's symbols first
        let request = InBackground { try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/echo/stop-here", timeout: 60) }
        try server.waitForLog("Breakpoint 1, ", timeout: 60)
        try server.waitForLog("Echo.swift:\(line)", timeout: 30)
        #expect(server.waitForExit(timeout: 30) != nil, "gdb killed it and left")
        if case .success = try #require(request.wait(timeout: 30)) { Issue.record("the request cannot have been answered") }
        #expect(server.log.contains("handle"), "the frame is the handler: \(server.log.suffix(1500))")
    }
}
