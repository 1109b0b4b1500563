@testable import ForkliftWorker
import ForkliftSystem
import Testing

/// listen_allowed_clients' log lines, on a mock clock: one per address at once, then at most
/// one per address every 10 s, with the count of what was refused in between.
@Suite struct RefusedClientsTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)

    @Test func theFirstRefusalOfAnAddressIsLoggedTheRestCountedUntilItsIntervalIsOver() {
        var refused = RefusedClients()
        let first = refused.refused("127.0.0.2", now: t0)
        #expect(first?.hasPrefix("refused a connection from 127.0.0.2: not in listen_allowed_clients") == true)
        for second in 1...9 { #expect(refused.refused("127.0.0.2", now: t0.advanced(bySeconds: Double(second))) == nil) }
        let next = refused.refused("127.0.0.2", now: t0.advanced(bySeconds: 10))
        #expect(next?.hasSuffix("(and 9 more since its last line 10.0 s ago)") == true, "\(next ?? "nil")")
        #expect(refused.refused("127.0.0.2", now: t0.advanced(bySeconds: 11)) == nil, "a new interval from that line")
    }

    @Test func eachAddressHasItsOwnInterval() {
        var refused = RefusedClients()
        #expect(refused.refused("127.0.0.2", now: t0) != nil)
        #expect(refused.refused("::2", now: t0.advanced(bySeconds: 1))?.contains("from ::2") == true)
        #expect(refused.refused("127.0.0.2", now: t0.advanced(bySeconds: 2)) == nil)
        #expect(refused.refused("::2", now: t0.advanced(bySeconds: 2)) == nil)
    }

    @Test func aQuietAddressComesBackWithoutACount() {
        var refused = RefusedClients()
        _ = refused.refused("10.0.0.9", now: t0)
        let later = refused.refused("10.0.0.9", now: t0.advanced(bySeconds: 60))
        #expect(later?.contains("more since") == false)
    }

    /// A scan from many addresses: at most `mostRemembered` are kept; with all of them recent,
    /// the rest share one line per interval, and the memory stays bounded.
    @Test func manyAddressesAtOnceShareALineAndStayBounded() {
        var refused = RefusedClients()
        var lines = 0
        for n in 0..<(RefusedClients.mostRemembered + 500) {
            if refused.refused("10.1.\(n / 256).\(n % 256)", now: t0) != nil { lines += 1 }
        }
        #expect(lines == RefusedClients.mostRemembered + 1)
        #expect(refused.remembered == RefusedClients.mostRemembered + 1)
        // Once their interval is over, the old ones are forgotten to make room.
        #expect(refused.refused("10.9.9.9", now: t0.advanced(bySeconds: 11))?.contains("share this line") == false)
        #expect(refused.remembered <= RefusedClients.mostRemembered + 1)
    }
}
