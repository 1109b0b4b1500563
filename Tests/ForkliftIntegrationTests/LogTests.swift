import Foundation
import ForkliftTestSupport
import Testing

/// What workers print, the access log, and reopening every log after logrotate.
@Suite(.serialized) struct LogTests {
    @Test func workersOutputGoesToTheLogDecoratedAndWhole() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\ncatch_workers_output = true"))
        defer { server.shutdown() }
        let worker = try #require(server.workerPIDs().first)
        #expect(try FastCGIClient.get(server.www, "/behaviors/print", query: "n=10000").bodyText == "printed\n")
        try server.waitForLog("[pool www] worker \(worker) said into stdout: out \(worker)")
        try server.waitForLog("[pool www] worker \(worker) said into stderr: err \(worker)")
        try server.waitForLog("said into stderr: " + String(repeating: "x", count: 10000))
    }

    @Test func undecoratedOutputIsTheRawLine() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\ncatch_workers_output = true\ndecorate_workers_output = false"))
        defer { server.shutdown() }
        let worker = try #require(server.workerPIDs().first)
        _ = try FastCGIClient.get(server.www, "/behaviors/print")
        try server.waitForLog("] out \(worker)")
        #expect(!server.log.contains("said into"))
    }

    @Test func theAccessLogHasALinePerRequestInTheFormat() throws {
        let server = try ForkliftServer(config: sizedPool("""
            max_children = 1
            access_log = "{dir}/access.log"
            access_format = "%R %m %r%Q%q %s %f %n %{mili}d %{Content-Type}o %{HTTP_X_TRACE}e %p %%"
            """))
        defer { server.shutdown() }
        let worker = try #require(server.workerPIDs().first)
        let params = FastCGIClient.cgiParams(path: "/behaviors/x", query: "a=1", extra: [("HTTP_X_TRACE", "t-42")])
        #expect(try FastCGIClient.request(server.www, params: params).status == 200)
        #expect(try FastCGIClient.get(server.www, "/nowhere").status == 404)
        let file = server.directory + "/access.log"
        #expect(ForkliftServer.eventually { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").components(separatedBy: "\n").count == 3 })
        let lines = try String(contentsOfFile: file, encoding: .utf8).components(separatedBy: "\n")
        let first = lines[0].components(separatedBy: " ")
        #expect(Array(first.prefix(7)) == ["127.0.0.1", "GET", "/behaviors/x?a=1", "200", "behaviors", "www", first[6]], "\(lines[0])")
        #expect(Double(first[6]) != nil, "a duration in ms: \(first[6])")
        #expect(lines[0].hasSuffix("text/plain; charset=utf-8 t-42 \(worker) %"), "\(lines[0])")
        #expect(lines[1].hasPrefix("127.0.0.1 GET /nowhere 404 - www "), "\(lines[1])")
    }

    @Test(arguments: ["access_log", "slowlog"])
    func aLogThePoolCannotOpenStopsRunNamingIt(key: String) throws {
        let result = try forklift("run", config: sizedPool("max_children = 1\n\(key) = \"{dir}/no-such-dir/x.log\""))
        #expect(result.status == 1)
        #expect(result.output.contains("cannot open \(key) /") && result.output.contains("/no-such-dir/x.log: No such file or directory"), "\(result.output)")
    }

    @Test func aReloadToALogThePoolCannotOpenIsRolledBack() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        try server.writeConfig(sizedPool("max_children = 1\naccess_log = \"{dir}/no-such-dir/access.log\""))
        let reload = try server.reload()
        #expect(reload.status != 0 && reload.output.contains("cannot open access_log"), "\(reload.output)")
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200, "the old generation serves on")
    }

    /// USR1 after logrotate moved the files: new lines go to new files (error log, access log,
    /// slow log), in the master, the host and the workers.
    @Test func usr1ReopensEveryLogAfterLogrotate() throws {
        let server = try ForkliftServer(config: sizedPool("""
            max_children = 1
            access_log = "{dir}/access.log"
            slowlog = "{dir}/slow.log"
            request_slowlog_timeout = "300ms"
            """, global: "error_log = \"{dir}/error.log\""), waitUntilReady: false)
        defer { server.shutdown() }
        let dir = server.directory
        try server.waitForLog("forklift is ready", in: dir + "/error.log", timeout: 60)
        _ = try FastCGIClient.get(server.www, "/behaviors")
        #expect(ForkliftServer.eventually { FileManager.default.fileExists(atPath: dir + "/access.log") })
        for name in ["error.log", "access.log"] { try FileManager.default.moveItem(atPath: dir + "/" + name, toPath: dir + "/" + name + ".1") }
        server.signal(SIGUSR1)
        // The worker has the signal pending once its host says so, and handles it before its next accept.
        try server.waitForLog("log files reopened, SIGUSR1 sent to 1 workers", in: dir + "/error.log")
        _ = try FastCGIClient.get(server.www, "/behaviors/hang", query: "ms=600")
        #expect(ForkliftServer.eventually { ((try? String(contentsOfFile: dir + "/access.log", encoding: .utf8)) ?? "").contains("/behaviors/hang") })
        #expect(!(try String(contentsOfFile: dir + "/access.log.1", encoding: .utf8)).contains("/behaviors/hang"))
        #expect(ForkliftServer.eventually { ((try? String(contentsOfFile: dir + "/error.log", encoding: .utf8)) ?? "").contains("slow request: worker") },
                "the host logs into the new error log: \((try? String(contentsOfFile: dir + "/error.log", encoding: .utf8)) ?? "")")
        #expect(ForkliftServer.eventually { ((try? String(contentsOfFile: dir + "/slow.log", encoding: .utf8)) ?? "").contains("its stack:") })
    }
}
