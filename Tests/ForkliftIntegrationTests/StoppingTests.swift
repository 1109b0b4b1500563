import Foundation
import ForkliftTestSupport
import Testing

/// A request sent from another thread, to be waited for later.
func backgroundRequest(_ address: FastCGIAddress, _ path: String, query: String) -> InBackground<FastCGIResponse> {
    InBackground { try FastCGIClient.get(address, path, query: query, timeout: 60) }
}

@Suite(.serialized) struct StoppingTests {
    @Test func termLetsTheRequestInFlightFinish() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 2))
        defer { server.shutdown() }
        let family = server.descendants()
        #expect(family.count == 3, "one host and two workers: \(family)")

        let slow = backgroundRequest(.unix(server.directory + "/www.sock"), "/behaviors/sleep", query: "ms=1500")
        usleep(400_000) // the request is inside the plugin now
        server.signal(SIGTERM)

        let response = try #require(try slow.wait()?.get())
        #expect(response.status == 200)
        let slept = Int(response.bodyText.prefix { $0 != "\n" }.split(separator: " ")[1]) ?? 0
        #expect(slept >= 1500, "TERM must not cut the plugin's sleep short (it is blocked during a request)")
        #expect(response.bodyText.hasSuffix("\nend\n"), "the whole response arrived")
        #expect(server.waitForExit(timeout: 20) == 0)
        #expect(family.keys.allSatisfy { !ProcessTable.isAlive($0) }, "no forklift process remains")
        #expect(!FileManager.default.fileExists(atPath: server.directory + "/forklift.pid"), "pid file removed")
        #expect(!FileManager.default.fileExists(atPath: server.directory + "/www.sock"), "socket file removed")
    }

    @Test func dieTimeoutKillsWhatDoesNotFinish() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 1, dieTimeout: "1s"))
        defer { server.shutdown() }
        let family = server.descendants()

        let slow = backgroundRequest(.unix(server.directory + "/www.sock"), "/behaviors/sleep", query: "ms=8000")
        usleep(400_000)
        server.signal(SIGTERM)

        #expect(server.waitForExit(timeout: 6) == 1, "survivors were killed: exit status 1")
        let outcome = slow.wait(timeout: 10)
        if case .success(let response) = outcome {
            Issue.record("the killed request should not complete, got \(response.status)")
        }
        #expect(family.keys.allSatisfy { !ProcessTable.isAlive($0) }, "no forklift process remains")
        #expect(server.log.contains("still busy after die_timeout (1.0 s): killing it and its workers"))
    }

    @Test func anIdleServerStopsAtOnceOnIntAndQuit() throws {
        for signal in [SIGINT, SIGQUIT] {
            let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 3))
            defer { server.shutdown() }
            let family = server.descendants()
            server.signal(signal)
            #expect(server.waitForExit(timeout: 5) == 0)
            #expect(family.keys.allSatisfy { !ProcessTable.isAlive($0) })
        }
    }

    @Test func workersFinishAndLeaveWhenTheMasterIsKilled() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 2))
        defer { server.shutdown() }
        let family = server.descendants()
        let slow = backgroundRequest(.unix(server.directory + "/www.sock"), "/behaviors/sleep", query: "ms=1000")
        usleep(300_000)
        server.signal(SIGKILL)

        let response = try #require(try slow.wait()?.get())
        #expect(response.bodyText.hasSuffix("\nend\n"), "the request in flight still completes")
        #expect(ForkliftServer.eventually(timeout: 10) { family.keys.allSatisfy { !ProcessTable.isAlive($0) } },
                "hosts and workers leave once their master is gone")
    }
}
