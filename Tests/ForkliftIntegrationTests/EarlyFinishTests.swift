import Foundation
import ForkliftTestSupport
import Testing

/// A handler finishes its response and works on (PHP-FPM's fastcgi_finish_request): the
/// client has the whole response before the work ends; the worker takes its next request
/// only after it; a kept connection goes to another worker meanwhile.
@Suite struct EarlyFinishTests {
    static let work = "work after finish done"

    @Test func theClientHasTheResponseBeforeTheWorkEndsAndTheWorkerWaitsForIt() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let started = Date()
        let response = try FastCGIClient.get(server.www, "/behaviors/finish-then-sleep", query: "ms=3000")
        let answeredIn = Date().timeIntervalSince(started)
        #expect(response.status == 200 && response.bodyText.hasPrefix("finished before the work, pid "))
        #expect(answeredIn < 2, "the response came after \(answeredIn) s, not after the 3 s of work")
        #expect(!server.log.contains(Self.work), "the work goes on")
        // The worker still runs the request: the status page and the next client see it.
        let page = try PoolStatusPage.fetch(server.statusSocket)
        #expect(page.int("active processes") == 1)
        #expect(page.processes.first?["request uri"] as? String == "/behaviors/finish-then-sleep?ms=3000")
        let next = try FastCGIClient.get(server.www, "/behaviors/pid")
        #expect(next.status == 200)
        #expect(server.log.contains(Self.work + ": slept 3000 ms, a write after finish was refused"),
                "the next request waited for the work: \(server.log.suffix(800))")
    }

    /// The body the handler did not read is read away before the connection closes (else
    /// the close could reset the connection under the response); reads after it see the end.
    @Test func anUnreadBodyIsDrainedAndReadsAfterFinishSeeItsEnd() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let body = [UInt8](repeating: 120, count: 200_000)
        let response = try FastCGIClient.request(server.www, params: FastCGIClient.cgiParams(
            method: "POST", path: "/behaviors/finish-then-sleep", query: "ms=10", bodyLength: body.count), body: body)
        #expect(response.status == 200 && response.bodyText.hasPrefix("finished before the work"))
        try server.waitForLog(Self.work + ": slept 10 ms, a write after finish was refused, body after finish 0 bytes")
        #expect(try FastCGIClient.get(server.www, "/behaviors/pid").status == 200)
    }

    /// A kept connection is parked when its response finishes: the client's next request on
    /// it is served by another worker while the first one still works.
    @Test func aKeptConnectionGoesToAnotherWorkerWhileTheWorkGoesOn() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2", extra: """
            [pool.www.plugin.echo]
            path = "{build}/libEcho.so"
            route = "/echo"
            """))
        defer { server.shutdown() }
        let connection = try KeptConnection(server.www)
        defer { connection.close() }
        let first = try connection.get("/behaviors/finish-then-sleep", query: "ms=4000")
        let working = try #require(first.bodyText.split(separator: " ").last.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        let second = try connection.get("/echo/after")
        #expect(second.status == 200)
        let pid = try #require(second.bodyText.split(separator: "\n").first { $0.hasPrefix("pid: ") }.flatMap { Int32($0.dropFirst(5)) })
        #expect(pid != working, "served by the other worker, on the same connection")
        #expect(!server.log.contains(Self.work), "before the first worker's work ended")
        try server.waitForLog(Self.work)
    }

    /// A kept connection finished early is parked while it is in the worker's kept-wait epoll
    /// set: it leaves the set first. Left in it (epoll keeps a registration while the master
    /// holds the connection), the same connection handed back to the worker under the same
    /// descriptor number could not be registered again, and was closed.
    @Test func aKeptConnectionFinishedEarlyAndHandedBackStaysOpen() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nkeepalive_timeout = \"60s\""))
        defer { server.shutdown() }
        let connection = try KeptConnection(server.www)
        defer { connection.close() }
        #expect(try connection.get("/behaviors").status == 200) // kept: waited on in the worker's set
        for round in 0..<3 {
            #expect(try connection.get("/behaviors/finish-then-sleep", query: "ms=20").status == 200, "round \(round)")
            #expect(try connection.get("/behaviors").status == 200, "round \(round): handed back to the worker")
            #expect(try connection.get("/behaviors").status == 200, "round \(round): and kept by it")
        }
        #expect(!connection.closedByServer(within: 0.2))
    }

    @Test func aFailureAfterFinishingIsLoggedAndAbortsNothing() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let response = try FastCGIClient.get(server.www, "/behaviors/finish-then-sleep", query: "ms=10&then-throw")
        #expect(response.status == 200 && response.bodyText.hasPrefix("finished before the work"), "complete, with END_REQUEST")
        try server.waitForLog("thrown on purpose after finishing")
        #expect(!server.log.contains("the connection is aborted"))
        #expect(try FastCGIClient.get(server.www, "/behaviors/pid").status == 200)
    }

    /// The same through the C ABI: docs/examples/hello_c.c finishes below /later.
    @Test func theCExampleFinishesThroughTheABI() throws {
        let directory = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let plugin = try buildCPlugin([try cExampleSource()], in: directory)
        let server = try ForkliftServer(config: sizedPool("max_children = 1", extra: """
            [pool.www.plugin.c]
            path = "\(plugin)"
            route = "/c"
            settings = { later_ms = 3000 }
            """))
        defer { server.shutdown() }
        let started = Date()
        let response = try FastCGIClient.get(server.www, "/c/later")
        #expect(response.bodyText == "Hello from C! GET /c/later (request 1 of this worker)\n")
        #expect(Date().timeIntervalSince(started) < 2, "before the 3 s of work")
        #expect(!server.log.contains("hello_c: the work after the response is done"))
        try server.waitForLog("hello_c: the work after the response is done")
    }
}
