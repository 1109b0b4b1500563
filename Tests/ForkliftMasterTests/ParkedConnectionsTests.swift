import ForkliftConfig
@testable import ForkliftMaster
import ForkliftSystem
import Testing

/// What becomes of idle kept connections parked with the master, on a mock clock.
@Suite struct ParkedConnectionsTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)
    let www = ListenAddress.unix(path: "/run/www.sock")
    let api = ListenAddress.unix(path: "/run/api.sock")

    func park(keepalive: Double = 10, most: Int = 511) -> ParkedConnections {
        var parked = ParkedConnections()
        parked.limits = [www: .init(keepaliveTimeout: keepalive, most: most), api: .init(keepaliveTimeout: 0, most: most)]
        return parked
    }

    @Test func aRequestOnAParkedConnectionSendsItBackToItsPool() {
        var parked = park()
        #expect(parked.parked(7, at: www, idleSince: t0, now: t0).isEmpty)
        #expect(parked.watched == [7])
        #expect(parked.readable(7, hasRequest: true) == [.forward(7, www)])
        #expect(parked.watched.isEmpty, "not polled while it waits to be sent")
        #expect(parked.nextDeadline == nil, "nor timed out")
        #expect(parked.waitingToForward(www) == [.forward(7, www)], "again when the channel has room")
        parked.forwarded(7)
        #expect(parked.connections.isEmpty && parked.waitingToForward(www).isEmpty)
    }

    @Test func theClientClosingItClosesIt() {
        var parked = park()
        _ = parked.parked(7, at: www, idleSince: t0, now: t0)
        #expect(parked.readable(7, hasRequest: false) == [.close(7, reason: "the client closed it")])
        #expect(parked.connections.isEmpty)
    }

    /// keepalive_timeout counts from when the connection went idle in its worker, not from
    /// when it was parked: the deadline is derived from that, never listed twice.
    @Test func keepaliveTimeoutCountsFromWhenItWentIdle() {
        var parked = park(keepalive: 10)
        _ = parked.parked(7, at: www, idleSince: t0, now: t0.advanced(bySeconds: 4))
        _ = parked.parked(8, at: api, idleSince: t0, now: t0.advanced(bySeconds: 4))
        #expect(parked.nextDeadline == t0.advanced(bySeconds: 10), "api has no keepalive_timeout")
        #expect(parked.expire(now: t0.advanced(bySeconds: 9.9)).isEmpty)
        #expect(parked.expire(now: t0.advanced(bySeconds: 10)) == [.close(7, reason: "idle for keepalive_timeout (10.0 s)")])
        #expect(parked.watched == [8] && parked.nextDeadline == nil)
    }

    @Test func aPoolHoldsAtMostListenBacklogTheOldestGoFirst() {
        var parked = park(most: 2)
        _ = parked.parked(7, at: www, idleSince: t0.advanced(bySeconds: 2), now: t0.advanced(bySeconds: 3))
        _ = parked.parked(8, at: www, idleSince: t0, now: t0.advanced(bySeconds: 3))
        _ = parked.parked(9, at: api, idleSince: t0, now: t0.advanced(bySeconds: 3))
        let actions = parked.parked(10, at: www, idleSince: t0.advanced(bySeconds: 3), now: t0.advanced(bySeconds: 3))
        #expect(actions == [.close(8, reason: "more than listen_backlog (2) idle kept connections")])
        #expect(parked.watched == [7, 9, 10])
    }

    /// The master's descriptors are finite: over all pools it holds at most `mostInAll`,
    /// closing the connections idle longest, whichever pool they belong to.
    @Test func theMasterHoldsAtMostMostInAllOverEveryPool() {
        var parked = park(most: 10)
        parked.mostInAll = 2
        _ = parked.parked(7, at: www, idleSince: t0.advanced(bySeconds: 1), now: t0.advanced(bySeconds: 3))
        _ = parked.parked(8, at: api, idleSince: t0, now: t0.advanced(bySeconds: 3))
        let actions = parked.parked(9, at: www, idleSince: t0.advanced(bySeconds: 2), now: t0.advanced(bySeconds: 3))
        #expect(actions == [.close(8, reason: "more than the master holds (2, half its RLIMIT_NOFILE) idle kept connections")])
        #expect(parked.watched == [7, 9])
        _ = parked.readable(7, hasRequest: true)
        #expect(parked.parked(10, at: api, idleSince: t0, now: t0.advanced(bySeconds: 3)).isEmpty,
                "one waiting to be forwarded is on its way out, not held idle")
    }

    @Test func anUnknownPoolOrAGoneOneClosesThem() {
        var parked = park()
        #expect(parked.parked(7, at: .tcp(host: "127.0.0.1", port: 9), idleSince: t0, now: t0) == [.close(7, reason: "no pool listens on 127.0.0.1:9 any more")])
        _ = parked.parked(8, at: www, idleSince: t0, now: t0)
        _ = parked.parked(9, at: api, idleSince: t0, now: t0)
        _ = parked.readable(8, hasRequest: true)
        #expect(parked.drop(www, reason: "gone") == [.close(8, reason: "gone")])
        #expect(parked.waitingToForward(www).isEmpty && parked.watched == [9])
        #expect(parked.drop(nil, reason: "stopping") == [.close(9, reason: "stopping")])
    }

    /// A clock a worker read a moment later than the master's cannot put idleness in the future.
    @Test func anIdleSinceAfterNowIsNow() {
        var parked = park(keepalive: 1)
        _ = parked.parked(7, at: www, idleSince: t0.advanced(bySeconds: 60), now: t0)
        #expect(parked.nextDeadline == t0.advanced(bySeconds: 1))
    }
}
