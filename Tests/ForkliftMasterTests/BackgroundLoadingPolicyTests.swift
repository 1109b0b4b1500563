import ForkliftConfig
@testable import ForkliftMaster
import ForkliftSystem
import Glibc
import Testing

@Suite struct BackgroundLoadingPolicyTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)

    @Test func aHostStillLoadingAfterTheGraceGoesIdleThenBackToNormalAtTheLimit() {
        var policy = BackgroundLoading(started: t0, limit: 30)
        #expect(policy.tick(now: t0.advanced(bySeconds: 0.049)) == nil, "normal priority for the first 50 ms")
        #expect(policy.nextDeadline == t0.advanced(bySeconds: BackgroundLoading.grace))
        #expect(policy.tick(now: t0.advanced(bySeconds: 0.05)) == .lower)
        #expect(policy.isIdle)
        #expect(policy.tick(now: t0.advanced(bySeconds: 1)) == nil, "lowered once")
        #expect(policy.nextDeadline == t0.advanced(bySeconds: 30.05))
        #expect(policy.tick(now: t0.advanced(bySeconds: 30.05)) == .raise(.limitReached))
        #expect(!policy.isIdle && policy.nextDeadline == nil)
        #expect(policy.tick(now: t0.advanced(bySeconds: 100)) == nil, "never lowered again")
        #expect(policy.finished(.loaded) == nil, "already back to normal")
    }

    /// A pool whose host leaves root for its user raises itself back from idle within
    /// RLIMIT_NICE only: lowered only when the master's hard limit allows what it needs.
    @Test func aPoolUnderItsOwnUserIsLoweredOnlyWhenItCanComeBack() {
        var privileges = ProcessPrivileges()
        #expect(BackgroundLoading.allowed(for: privileges, changesUser: true, niceHardLimit: 0), "no user: the host stays root")
        privileges.user = .init(name: "www-data", id: 33)
        #expect(!BackgroundLoading.allowed(for: privileges, changesUser: true, niceHardLimit: 0))
        #expect(BackgroundLoading.allowed(for: privileges, changesUser: true, niceHardLimit: 20))
        #expect(BackgroundLoading.allowed(for: privileges, changesUser: false, niceHardLimit: 0), "a master that is not root changes no user")
        privileges.priority = -5
        #expect(!BackgroundLoading.allowed(for: privileges, changesUser: true, niceHardLimit: 20), "back to nice -5 needs 25")
        #expect(BackgroundLoading.allowed(for: privileges, changesUser: true, niceHardLimit: 25))
        privileges.priority = nil
        #expect(!BackgroundLoading.allowed(for: privileges, changesUser: true, niceHardLimit: 20, inheritedNice: -5),
                "without process_priority the host keeps the master's nice value, -5: back to it needs 25")
        #expect(BackgroundLoading.allowed(for: privileges, changesUser: true, niceHardLimit: 10, inheritedNice: 10))
    }

    @Test func aHostLoadedWithinTheGraceIsNeverLowered() {
        var policy = BackgroundLoading(started: t0, limit: 30)
        #expect(policy.finished(.loaded) == nil)
        #expect(policy.nextDeadline == nil)
        #expect(policy.tick(now: t0.advanced(bySeconds: 1)) == nil, "a late timer does not lower a loaded host")
    }

    @Test func loadingDoneOrAStopRaisesALoweredHost() {
        var ready = BackgroundLoading(started: t0, limit: 30)
        _ = ready.tick(now: t0.advanced(bySeconds: 0.1))
        #expect(ready.finished(.loaded) == .raise(.loaded))
        #expect(ready.tick(now: t0.advanced(bySeconds: 60)) == nil)

        var stopped = BackgroundLoading(started: t0, limit: 30)
        _ = stopped.tick(now: t0.advanced(bySeconds: 0.1))
        #expect(stopped.finished(.stopping) == .raise(.stopping))
    }

    @Test func aFailedRaiseAtTheLimitIsTriedAgainWhenLoaded() {
        var policy = BackgroundLoading(started: t0, limit: 1)
        #expect(policy.tick(now: t0.advanced(bySeconds: 0.1)) == .lower)
        #expect(policy.tick(now: t0.advanced(bySeconds: 1.1)) == .raise(.limitReached))
        policy.raisingFailed()
        #expect(policy.isIdle && policy.nextDeadline == nil, "still idle, no timer left")
        #expect(policy.tick(now: t0.advanced(bySeconds: 5)) == nil)
        #expect(policy.finished(.loaded) == .raise(.loaded))
    }

    @Test func aFailedLoweringIsNotRaisedLater() {
        var policy = BackgroundLoading(started: t0, limit: 30)
        #expect(policy.tick(now: t0.advanced(bySeconds: 0.1)) == .lower)
        policy.loweringFailed()
        #expect(!policy.isIdle && policy.nextDeadline == nil)
        #expect(policy.finished(.loaded) == nil)
    }

    @Test func thisProcessMayLowerAndRaiseAChild() throws {
        // The master's own moves on a real process: lower a child, read it back, raise it.
        let child = fork()
        if child == 0 { pause(); _exit(0) }
        try #require(child > 0, "fork failed")
        defer { kill(child, SIGKILL); var status: Int32 = 0; waitpid(child, &status, 0) }
        #expect(CPUPriority.of(child) == .normal)
        try CPUPriority.set(.idle, of: child)
        #expect(CPUPriority.of(child) == .idle)
        if CPUPriority.probeLeavingIdle() {
            try CPUPriority.set(.normal, of: child)
            #expect(CPUPriority.of(child) == .normal)
        } else {
            #expect(throws: SystemError.self) { try CPUPriority.set(.normal, of: child) }
        }
    }
}
