import Foundation
import ForkliftClient
import ForkliftTestSupport
import Glibc
import Testing

/// standby_workers: a worker forked ahead, past worker init, takes the next place with no
/// fork on the way; it leaves with its pool, and its failures are the pool's failed starts.
@Suite struct StandbyWorkerTests {
    static func standbyTitle(gen: Int = 1) -> String { "forklift: standby worker pool=www gen=\(gen)" }

    /// The standbys now, by their process titles.
    static func standbys(_ server: ForkliftServer, gen: Int = 1) -> Set<pid_t> {
        Set(server.descendants().filter { $0.value == standbyTitle(gen: gen) }.keys)
    }

    /// Waits for one standby of `gen`, past its worker init (its host's debug line), and returns it.
    static func readyStandby(_ server: ForkliftServer, gen: Int = 1) throws -> pid_t {
        var found: pid_t?
        _ = ForkliftServer.eventually {
            found = standbys(server, gen: gen).first
            return found != nil
        }
        let pid = try #require(found, "no standby worker: \(server.descendants())")
        try server.waitForLog("standby worker \(pid) ready")
        return pid
    }

    static func eventfds(of pid: pid_t) -> Int {
        let directory = "/proc/\(pid)/fd"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + $0)) == "anon_inode:[eventfd]"
        }.count
    }

    static func debug(_ config: String) -> String { config.replacingOccurrences(of: "log_level = \"info\"", with: "log_level = \"debug\"") }

    @Test func aRetiredWorkersPlaceGoesToTheStandbyAndAnotherStandsBy() throws {
        let server = try ForkliftServer(config: Self.debug(poolConfig(listen: "{dir}/www.sock", children: 2, maxRequests: 3, pool: "standby_workers = 1")))
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let standby = try Self.readyStandby(server)
        #expect(server.workerPIDs().count == 2, "the standby is not one of the pool's workers")
        // Both workers retire within 6 requests (3 each): the first place goes to the standby,
        // which is a worker from then on.
        for index in 0..<7 { #expect(try FastCGIClient.get(address, "/echo/\(index)").status == 200) }
        try server.waitForLog("standby worker \(standby) takes slot ")
        #expect(ForkliftServer.eventually { server.workerPIDs().contains(standby) || kill(standby, 0) != 0 },
                "its title: \(ProcessTable.title(of: standby) ?? "gone")")
        try server.waitForLog("its replacement was started as it left") // logged at the reap
        // And another stands by, once the pool is whole again; the host holds the eventfd of
        // that one only.
        let host = try #require(server.descendants().first { $0.value.hasPrefix("forklift: host pool=www") }?.key)
        let settled = ForkliftServer.eventually {
            let now = Self.standbys(server)
            return now.count == 1 && !now.contains(standby) && server.workerPIDs().count == 2 && Self.eventfds(of: host) == 1
        }
        #expect(settled, "standbys \(Self.standbys(server)), workers \(server.workerPIDs()), the host's eventfds \(Self.eventfds(of: host))")
    }

    @Test func theStandbyLeavesWithItsGenerationOnReloadAndStop() throws {
        let server = try ForkliftServer(config: Self.debug(poolConfig(listen: "{dir}/www.sock", children: 1, pool: "standby_workers = 1")))
        defer { server.shutdown() }
        let old = try Self.readyStandby(server)
        server.signal(SIGHUP)
        try server.waitForLog("reloaded in")
        let new = try Self.readyStandby(server, gen: 2)
        #expect(ForkliftServer.eventually { kill(old, 0) != 0 }, "the first generation's standby is still there")
        try server.waitForLog("standby worker leaving: stopped while on standby")
        #expect(try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/hello").status == 200)
        server.signal(SIGTERM)
        #expect(server.waitForExit() == 0)
        #expect(ForkliftServer.eventually { kill(new, 0) != 0 }, "the standby outlived its master")
    }

    @Test func theStatusPageShowsTheStandbyApartFromTheProcesses() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2\nstandby_workers = 1"))
        defer { server.shutdown() }
        let page = try server.waitForStatus(server.statusSocket, "a standby waiting") { $0.int("standby processes") == 1 }
        #expect(page.int("total processes") == 2, "\(page.fields)")
        let metrics = try FastCGIClient.get(server.statusSocket, "/status", query: "openmetrics")
        #expect(metrics.bodyText.contains("forklift_standby_processes{pool=\"www\"} 1"), "\(metrics.bodyText)")
        let without = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { without.shutdown() }
        #expect(try without.waitForStatus(without.statusSocket, "the page") { $0.int("total processes") == 1 }.int("standby processes") == 0)
    }

    /// catch_workers_output: a standby's stdout and stderr are caught from its fork on, and
    /// named by its pid once it serves.
    @Test func whatAStandbyPrintsIsCaught() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nstandby_workers = 1\nmax_requests = 1\ncatch_workers_output = true", logLevel: "debug"))
        defer { server.shutdown() }
        let standby = try Self.readyStandby(server)
        // The one worker retires after a request: the standby takes its place and prints in the next.
        for _ in 0..<2 {
            let response = try FastCGIClient.get(server.www, "/behaviors/print")
            #expect(response.bodyText == "printed\n")
        }
        try server.waitForLog("[pool www] worker \(standby) said into stdout: out \(standby)")
        try server.waitForLog("[pool www] worker \(standby) said into stderr: err \(standby)")
        let both = ForkliftServer.eventually { server.log.components(separatedBy: "\n").filter { $0.contains("said into stdout: out ") }.count == 2 }
        #expect(both, "each of the two printed once: \(server.log.components(separatedBy: "\n").filter { $0.contains("said into") })")
    }

    /// USR1 after logrotate: a standby reopens its log too, so what it logs once it serves
    /// goes to the new file.
    @Test func usr1ReachesTheStandby() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nstandby_workers = 1\nmax_requests = 1",
                                                          global: "error_log = \"{dir}/error.log\"", logLevel: "debug"), waitUntilReady: false)
        defer { server.shutdown() }
        let log = server.directory + "/error.log"
        try server.waitForLog("forklift is ready", in: log, timeout: 60)
        var found: pid_t?
        #expect(ForkliftServer.eventually {
            found = Self.standbys(server).first
            return found != nil
        })
        let standby = try #require(found)
        try server.waitForLog("standby worker \(standby) ready", in: log)
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        server.signal(SIGUSR1)
        try server.waitForLog("log files reopened, SIGUSR1 sent to 1 workers and 1 standby workers", in: log)
        // The one worker retires after a request: the standby takes its place and serves the next.
        for _ in 0..<2 { #expect(try FastCGIClient.get(server.www, "/behaviors/sleep", query: "ms=0").status == 200) }
        try server.waitForLog("[worker pool=www gen=1 pid=\(standby)] GET /behaviors/sleep", in: log)
        let old = try String(contentsOfFile: log + ".1", encoding: .utf8)
        #expect(!old.contains("pid=\(standby)] GET"), "its lines went to the rotated file")
    }

    @Test func aStandbysFailedWorkerInitIsNamedBackedOffAndRecoveredFrom() throws {
        let config = sizedPool("max_children = 2\nstandby_workers = 1", behaviorSettings: "fail_worker_init_while = \"{dir}/fail\"", logLevel: "debug")
        let server = try ForkliftServer(config: config)
        defer { server.shutdown() }
        let first = try Self.readyStandby(server)
        let failFile = server.directory + "/fail"
        #expect(FileManager.default.createFile(atPath: failFile, contents: nil))
        kill(first, SIGKILL)
        try server.waitForLog("standby worker \(first) was killed by SIGKILL while on standby; replacing it")
        // Standbys fail while the file is there, with the reason, and with growing delays.
        try server.waitForLog(" in a row, the last: standby worker ")
        let line = try #require(server.log.components(separatedBy: "\n").first { $0.contains(" in a row, the last: standby worker ") })
        #expect(line.contains("pool www: workers die right after they start ("), "\(line)")
        #expect(line.contains("failed its worker init: plugin behaviors: worker init failed: worker init failed on purpose: \(failFile) exists); forking new ones with growing delays"), "\(line)")
        // The workers serve on meanwhile.
        #expect(try FastCGIClient.get(server.www, "/behaviors/sleep", query: "ms=0").status == 200)
        #expect(server.workerPIDs().count == 2)
        let before = server.log.utf8.count
        try FileManager.default.removeItem(atPath: failFile)
        // A standby forked after that passes worker init and waits.
        var recovered: pid_t?
        let stands = ForkliftServer.eventually {
            let since = String(decoding: server.log.utf8.dropFirst(before), as: UTF8.self)
            recovered = since.components(separatedBy: "\n").compactMap { line -> pid_t? in
                guard let range = line.range(of: "standby worker ") else { return nil }
                let rest = line[range.upperBound...]
                guard rest.contains(" ready ") else { return nil }
                return pid_t(rest.prefix { $0.isNumber })
            }.first { kill($0, 0) == 0 }
            return recovered != nil
        }
        #expect(stands, "no standby passed worker init after the cause went away:\n\(server.log)")
        #expect(recovered.map { Self.standbys(server).contains($0) } == true)
    }
}
