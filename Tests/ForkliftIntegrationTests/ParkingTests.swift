import Foundation
import ForkliftTestSupport
import Testing

/// Idle kept connections a worker gives up are parked with the master, not closed: a web
/// server that picks the connection for its next request just then would fail it (nginx
/// retries only idempotent requests). Their next request is served by whichever worker is free.
@Suite struct ParkingTests {
    @Test func aKeptConnectionOutlivesItsWorkersRecycle() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nmax_requests = 1"))
        defer { server.shutdown() }
        let kept = try KeptConnection(server.www)
        let first = try kept.get("/behaviors")
        #expect(first.status == 200)
        try server.waitForLog("retired after serving its requests")
        #expect(!kept.closedByServer(within: 0.2), "the worker left; its connection did not close")
        let second = try kept.get("/behaviors")
        #expect(second.status == 200)
        #expect(second.bodyText != first.bodyText, "served by the replacement worker")
        #expect(try kept.get("/behaviors").status == 200, "and again, after that one recycled too")
    }

    @Test func aKeptConnectionOutlivesAReload() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nkeepalive_timeout = \"60s\"", logLevel: "debug"))
        defer { server.shutdown() }
        let kept = try KeptConnection(server.www)
        let before = try kept.get("/behaviors")
        let oldWorkers = server.workerPIDs()
        let reload = try server.reload()
        #expect(reload.status == 0, "\(reload.output)")
        #expect(ForkliftServer.eventually { server.workerPIDs().isDisjoint(with: oldWorkers) && server.workerPIDs().count == 1 },
                "the old generation's worker left")
        #expect(!kept.closedByServer(within: 0.2), "\(server.log)")
        let after = try kept.get("/behaviors")
        #expect(after.status == 200)
        #expect(after.bodyText != before.bodyText, "served by the new generation")
    }

    /// One worker, two kept connections taking turns: the idle one is parked for the other
    /// (whose connection takes the parked one's descriptor number in the worker), and given
    /// back when its client sends again. A connection no longer kept leaves the worker's
    /// kept-wait epoll set while it is still open: left in it, under the number the next
    /// connection gets, the worker waits on the wrong registration (here: until
    /// request_read_timeout, then the connection is lost).
    @Test func keptConnectionsTakingTurnsOnOneWorkerAreServedAtOnce() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nkeepalive_timeout = \"60s\"\nrequest_read_timeout = \"10s\"", logLevel: "debug"))
        defer { server.shutdown() }
        let first = try KeptConnection(server.www)
        let second = try KeptConnection(server.www)
        #expect(try first.get("/behaviors").status == 200)
        for round in 0..<3 {
            let started = Date()
            #expect(try second.get("/behaviors").status == 200, "round \(round)")
            #expect(try first.get("/behaviors").status == 200, "round \(round)")
            #expect(Date().timeIntervalSince(started) < 3, "round \(round): each served once the other was parked, not after a read timeout")
        }
        #expect(!server.log.contains("request_read_timeout"), "no request taken for a stalled one")
        #expect(server.log.contains("giving up an idle kept connection: a new client waits and no worker is free"))
    }

    @Test func aParkedConnectionIsClosedAfterKeepaliveTimeout() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nmax_requests = 1\nkeepalive_timeout = \"500ms\"", logLevel: "debug"))
        defer { server.shutdown() }
        let kept = try KeptConnection(server.www)
        #expect(try kept.get("/behaviors").status == 200)
        try server.waitForLog("retired after serving its requests")
        #expect(kept.closedByServer(within: 5))
        try server.waitForLog("closing a parked connection: idle for keepalive_timeout (0.5 s)")
    }

    @Test func aStopClosesParkedConnections() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nmax_requests = 1\nkeepalive_timeout = \"60s\""))
        let kept = try KeptConnection(server.www)
        #expect(try kept.get("/behaviors").status == 200)
        try server.waitForLog("retired after serving its requests")
        server.signal(SIGTERM)
        #expect(server.waitForExit() == 0)
        #expect(kept.closedByServer(within: 5))
        server.shutdown()
    }
}
