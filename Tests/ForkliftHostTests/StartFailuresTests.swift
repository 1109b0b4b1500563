@testable import ForkliftHost
import ForkliftSystem
import Testing

@Suite struct StartFailuresTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)

    @Test func delaysDoubleFromATenthOfASecondUpToFiveAndRecoveryResetsThem() {
        var failures = StartFailures()
        _ = failures.failedStart(pool: "www", description: "worker 1 exited with status 3", now: t0)
        #expect(failures.allowsFork(now: t0), "the first failed start is replaced at once")
        var delays: [Double] = []
        for _ in 0..<9 {
            _ = failures.failedStart(pool: "www", description: "worker 2 exited with status 3", now: t0)
            delays.append(failures.delay)
        }
        #expect(delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5, 5])
        #expect(!failures.allowsFork(now: t0.advanced(bySeconds: 4.9)))
        #expect(failures.allowsFork(now: t0.advanced(bySeconds: 5)))
        let recovered = failures.recovered(pool: "www", pid: 7)
        #expect(recovered.count == 1, "one line when it recovers")
        #expect(failures.consecutive == 0 && failures.delay == 0 && failures.allowsFork(now: t0))
    }

    @Test func oneLinePerChangeOfStateNotPerFailure() {
        var failures = StartFailures()
        var errors = 0
        for pid in 1...10 {
            let actions = failures.failedStart(pool: "www", description: "worker \(pid) failed its worker init right after it started", now: t0)
            errors += actions.filter { if case .log(.error, _) = $0 { return true } else { return false } }.count
        }
        #expect(errors == 2, "the first failure, then one line when the pool starts backing off")
    }
}
