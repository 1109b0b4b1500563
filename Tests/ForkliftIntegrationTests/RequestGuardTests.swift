import Foundation
import ForkliftTestSupport
import Testing

/// What one request can do to the others: crash records, plugin threads and signals.
@Suite(.serialized) struct RequestGuardTests {
    /// A worker that dies in the middle of a request is logged with the request it served
    /// (from its scoreboard slot), and replaced at once.
    @Test func aCrashInTheMiddleOfARequestNamesTheRequest() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let victim = try #require(server.workerPIDs().first)
        let slow = InBackground { try FastCGIClient.get(server.www, "/behaviors/sleep", query: "ms=5000", timeout: 30) }
        _ = try server.waitForStatus(server.statusSocket, "the request running") { $0.processes.first?["state"] as? String == "Running" }
        kill(victim, SIGSEGV)
        try server.waitForLog("worker \(victim) was killed by SIGSEGV")
        try server.waitForLog("in the middle of a request: GET /behaviors/sleep?ms=5000 (plugin behaviors, ")
        #expect((try? slow.wait()?.get()) == nil, "that request fails")
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200, "the next one is served by its replacement")
    }

    /// Threads a plugin starts in worker init never receive the signals the worker handles:
    /// they would interrupt the threads' system calls.
    @Test func threadsStartedInWorkerInitHaveTheWorkersSignalsBlocked() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1", behaviorSettings: "worker_thread = true"))
        defer { server.shutdown() }
        let worker = try #require(server.workerPIDs().first)
        let threads = ProcessTable.threads(of: worker).filter { $0 != worker }
        #expect(!threads.isEmpty, "the plugin's thread")
        for thread in threads {
            let mask = try #require(blockedSignals(worker, thread: thread))
            for signal in [SIGTERM, SIGINT, SIGQUIT, SIGUSR1] {
                #expect(mask & (UInt64(1) << UInt64(signal - 1)) != 0, "signal \(signal) blocked in thread \(thread): mask \(String(mask, radix: 16))")
            }
        }
        let main = try #require(blockedSignals(worker, thread: worker))
        #expect(main & (UInt64(1) << UInt64(SIGTERM - 1)) == 0, "the main thread takes TERM")
        // And a TERM still stops the worker (the main thread gets it).
        kill(worker, SIGTERM)
        try server.waitForLog("worker \(worker) retired")
    }
}

/// SigBlk of one thread, from /proc.
func blockedSignals(_ pid: pid_t, thread: pid_t) -> UInt64? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/status", encoding: .utf8),
          let line = status.components(separatedBy: "\n").first(where: { $0.hasPrefix("SigBlk:") }) else { return nil }
    return UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16)
}
