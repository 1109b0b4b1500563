@testable import ForkliftConfig
import ForkliftIPC
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

@Suite struct HostRestartsTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)

    @Test func theFirstRestartIsImmediateThenDelaysDoubleUpToAMinute() {
        var restarts = HostRestarts()
        #expect(restarts.failed(pool: "www", now: t0) == 0)
        #expect(restarts.isDue(pool: "www", now: t0))
        restarts.attempted(pool: "www")
        #expect(!restarts.isDue(pool: "www", now: t0), "an attempt clears the due time")
        let delays = (0..<8).map { _ in restarts.failed(pool: "www", now: t0) }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60])
        #expect(!restarts.isDue(pool: "www", now: t0.advanced(bySeconds: 59)))
        #expect(restarts.isDue(pool: "www", now: t0.advanced(bySeconds: 60)))
    }

    @Test func successResetsTheDelayAndForgetsTheDueTime() {
        var restarts = HostRestarts()
        _ = restarts.failed(pool: "www", now: t0)
        _ = restarts.failed(pool: "www", now: t0)
        restarts.succeeded(pool: "www")
        #expect(restarts.nextDue(among: ["www"]) == nil)
        #expect(restarts.failed(pool: "www", now: t0) == 0)
    }

    /// The bug this guards: a due time of a pool that is served again must not keep the
    /// master's poll timeout in the past.
    @Test func onlyUncoveredPoolsCountForTheNextTimer() {
        var restarts = HostRestarts()
        _ = restarts.failed(pool: "a", now: t0)
        _ = restarts.failed(pool: "b", now: t0.advanced(bySeconds: 5))
        #expect(restarts.nextDue(among: ["b"]) == t0.advanced(bySeconds: 5))
        #expect(restarts.nextDue(among: []) == nil)
        #expect(restarts.nextDue(among: ["a", "b"]) == t0)
    }
}

@Suite struct HandoffTests {
    @Test func theEnvironmentRoundTrips() {
        let handoff = Handoff(listeners: ["/run/www.sock": 5, "127.0.0.1:9000": 6], controlFD: 7, channelFD: 8,
                              previousMaster: 1234, generations: ["www": 3, "api": 9])
        setenv("FORKLIFT_HANDOFF", handoff.environmentValue, 1)
        let read = Handoff.fromEnvironment()
        #expect(read?.listeners == handoff.listeners)
        #expect(read?.controlFD == 7)
        #expect(read?.channelFD == 8)
        #expect(read?.previousMaster == 1234)
        #expect(read?.generations == ["www": 3, "api": 9])
        #expect(getenv("FORKLIFT_HANDOFF") == nil, "consumed, so that nothing started later inherits it")
    }

    @Test func listenAddressesParseBackFromTheirDescription() {
        for address in [ListenAddress.unix(path: "/run/www.sock"), .tcp(host: "127.0.0.1", port: 9000), .tcp(host: "::1", port: 9001), .tcp(host: "*", port: 80)] {
            #expect(ListenAddress(parsing: address.description) == address)
        }
    }
}

@Suite struct HostReportTests {
    @Test func reportsAreSingleLines() {
        #expect(HostReport.failed(reason: "line one\r\nline two").line == "failed line one line two\n")
        #expect(HostReport(line: "ready pool=www") == .ready(summary: "pool=www"))
        #expect(HostReport(line: "nonsense") == nil)
        #expect(HostReport(line: String(HostReport.loaded.line.dropLast())) == .loaded)
    }

    @Test func theLineBufferKeepsPartialLines() {
        var buffer = LineBuffer()
        #expect(buffer.append(Array("ready a\nfai".utf8)) == ["ready a"])
        #expect(buffer.append(Array("led b\n".utf8)) == ["failed b"])
    }
}
