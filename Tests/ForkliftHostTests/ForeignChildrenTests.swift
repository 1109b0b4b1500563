@testable import ForkliftHost
import ForkliftSystem
import Testing

/// What the host does with processes its gone workers left behind, on a mock clock.
@Suite struct ForeignChildrenPolicyTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)

    @Test func eachStrayGetsTermOnceAndKillAfterTheGraceUnlessItWentFirst() {
        var foreign = ForeignChildren()
        #expect(foreign.adopted([30, 10], now: t0) == [10, 30])
        #expect(foreign.adopted([10, 30, 40], now: t0.advanced(bySeconds: 1)) == [40], "TERM once each")
        #expect(foreign.nextDeadline == t0.advanced(bySeconds: ForeignChildren.grace))
        foreign.reaped(10) // it obeyed
        #expect(foreign.due(now: t0.advanced(bySeconds: ForeignChildren.grace - 0.1)).isEmpty)
        #expect(foreign.due(now: t0.advanced(bySeconds: ForeignChildren.grace)) == [30])
        #expect(foreign.nextDeadline == t0.advanced(bySeconds: 1 + ForeignChildren.grace))
        #expect(foreign.due(now: t0.advanced(bySeconds: 1 + ForeignChildren.grace)) == [40])
        #expect(foreign.nextDeadline == nil, "nothing left to wait for")
    }
}
