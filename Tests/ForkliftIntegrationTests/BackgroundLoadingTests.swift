import Foundation
import ForkliftSystem
import ForkliftTestSupport
import Glibc
import Testing

/// A reload's new generation loads at idle CPU priority (background_loading), and serves at
/// normal priority. Raising a process back from idle takes CAP_SYS_NICE (CI runs as root).
@Suite(.serialized, .enabled(if: CPUPriority.probeLeavingIdle(), "this user may not raise a process back from idle CPU priority"))
struct BackgroundLoadingTests {
    static let normal: Int32 = 0 // SCHED_OTHER
    static let idle: Int32 = 5 // SCHED_IDLE
    static let batch: Int32 = 3 // SCHED_BATCH

    func host(_ server: ForkliftServer, generation: Int) -> pid_t? {
        server.descendants().first { $0.value == "forklift: host pool=www gen=\(generation)" }?.key
    }

    /// The host of `generation` and its workers.
    func family(_ server: ForkliftServer, generation: Int) -> [pid_t] {
        let all = server.descendants()
        guard let host = all.first(where: { $0.value == "forklift: host pool=www gen=\(generation)" })?.key else { return [] }
        return [host] + ProcessTable.descendants(of: host).keys
    }

    func policies(_ pids: [pid_t]) -> [Int32?] { pids.map(ProcessTable.schedulingPolicy(of:)) }

    /// The policy of every thread of these processes.
    func threadPolicies(_ pids: [pid_t]) -> [Int32?] { policies(pids.flatMap(ProcessTable.threads(of:))) }

    /// These tests are about leaving idle priority: their workers are "normal" unless a test
    /// says otherwise (batch-when-idle's waits under SCHED_BATCH: SchedulingTests).
    func config(behaviorSettings: String = "", global: String = "", scheduling: String = "normal") -> String {
        reloadConfig(behaviorSettings: behaviorSettings, global: global)
            .replacingOccurrences(of: "max_children = 2", with: "max_children = 2\nprocess_scheduling = \"\(scheduling)\"")
    }

    func startServer(global: String = "") throws -> ForkliftServer {
        try ForkliftServer(config: config(global: global)) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
    }

    @Test func aSlowPreloadLoadsAtIdlePriorityAndTheNewGenerationServesAtNormalPriority() throws {
        let server = try startServer()
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let old = family(server, generation: 1)
        #expect(old.count == 3 && policies(old).allSatisfy { $0 == Self.normal }, "the first generation loads and serves at normal priority")

        // Worker init starts a thread, and takes long enough to look at the host before ready.
        try server.writeConfig(config(behaviorSettings: "preload_sleep_ms = 1500, worker_thread = true, worker_init_sleep_ms = 800"))
        let reload = InBackground { try server.reload() }
        var loading: pid_t?
        #expect(ForkliftServer.eventually(timeout: 5) { loading = host(server, generation: 2); return loading != nil })
        let candidate = try #require(loading)
        #expect(ForkliftServer.eventually(timeout: 1.2) { ProcessTable.schedulingPolicy(of: candidate) == Self.idle },
                "still loading after 50 ms: idle priority")
        #expect(policies(old).allSatisfy { $0 == Self.normal }, "the serving generation keeps normal priority")
        let status = try Command.run(ForkliftServer.binary, ["status", "--conf", server.configurationDirectory])
        #expect(status.output.contains("pool www gen 2 candidate (loading at idle CPU priority)"), "\(status.output)")
        #expect(try FastCGIClient.get(address, "/v").status == 200, "and serves meanwhile")
        #expect(ForkliftServer.eventually(timeout: 3) { ProcessTable.schedulingPolicy(of: candidate) == Self.normal })
        #expect(!server.log.contains("(host pid \(candidate)) is ready"), "the preload done, the host raised itself for the forks and worker init")
        try server.waitForLog("(host pid \(candidate)) loaded at idle CPU priority and is back to normal priority")
        let statusAfter = try Command.run(ForkliftServer.binary, ["status", "--conf", server.configurationDirectory])
        #expect(statusAfter.output.contains("pool www gen 2 candidate pid"), "the master knows it is loaded: \(statusAfter.output)")
        #expect(!server.log.contains("(host pid \(candidate)) is ready"), "still in worker init")

        let result = try #require(try reload.wait()?.get())
        #expect(result.status == 0, "\(result.output)")
        let new = family(server, generation: 2)
        #expect(new.count == 3, "host and 2 workers: \(server.descendants())")
        let threads = threadPolicies(new)
        #expect(threads.count >= 5, "host, 2 workers, their worker-init threads: \(threads)")
        #expect(threads.allSatisfy { $0 == Self.normal },
                "live: the host, the workers it forked while idle and their threads are all at normal priority: \(threads)")
        #expect(server.log.contains("is still loading after 50 ms: it continues at idle CPU priority, for at most 30.0 s"))
        #expect(server.log.contains("loaded at idle CPU priority and is back to normal priority"))
    }

    @Test func afterTheLimitLoadingContinuesAtNormalPriority() throws {
        let server = try startServer(global: #"background_loading = "1s""#)
        defer { server.shutdown() }
        try server.writeConfig(config(behaviorSettings: "preload_sleep_ms = 3000", global: #"background_loading = "1s""#))
        let reload = InBackground { try server.reload() }
        var loading: pid_t?
        #expect(ForkliftServer.eventually(timeout: 5) { loading = host(server, generation: 2); return loading != nil })
        let candidate = try #require(loading)
        #expect(ForkliftServer.eventually(timeout: 1.5) { ProcessTable.schedulingPolicy(of: candidate) == Self.idle })
        #expect(ForkliftServer.eventually(timeout: 2) { ProcessTable.schedulingPolicy(of: candidate) == Self.normal },
                "raised at the limit, while the preload still sleeps")
        #expect(!server.log.contains("pool www gen 2 (host pid \(candidate)) is ready"), "raised before it was ready")
        try server.waitForLog("is still loading after 1.0 s at idle CPU priority (background_loading): it continues at normal priority")
        #expect(try #require(try reload.wait()?.get()).status == 0)
    }

    @Test func noBackgroundLoadingWhenTurnedOffOrForTheFirstGeneration() throws {
        let slowConfig = config(behaviorSettings: "preload_sleep_ms = 800", global: "background_loading = 0")
        let server = try ForkliftServer(config: config(behaviorSettings: "preload_sleep_ms = 800"), waitUntilReady: false) {
            try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so")
        }
        defer { server.shutdown() }
        var first: pid_t?
        #expect(ForkliftServer.eventually(timeout: 5) { first = host(server, generation: 1); return first != nil })
        let firstHost = try #require(first)
        #expect(ProcessTable.schedulingPolicies(of: firstHost, over: 0.5) == [Self.normal], "nothing serves yet: the first generation loads at full speed")
        try server.waitForLog("forklift is ready")

        try server.writeConfig(slowConfig)
        let reload = InBackground { try server.reload() }
        var loading: pid_t?
        #expect(ForkliftServer.eventually(timeout: 5) { loading = host(server, generation: 2); return loading != nil })
        let candidate = try #require(loading)
        #expect(ProcessTable.schedulingPolicies(of: candidate, over: 0.5) == [Self.normal], "background_loading = 0")
        #expect(try #require(try reload.wait()?.get()).status == 0)
        #expect(!server.log.contains("continues at idle CPU priority"))
    }

    @Test func anUpgradedMasterLoadsInTheBackgroundWhileTheOldOneServes() throws {
        let server = try ForkliftServer(config: config(behaviorSettings: "preload_sleep_ms = 2000")) {
            try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so")
        }
        defer { server.shutdown() }
        let conf = server.configurationDirectory
        let upgrade = InBackground { try Command.run(ForkliftServer.binary, ["upgrade", "--conf", conf]) }
        var loading: pid_t?
        #expect(ForkliftServer.eventually(timeout: 5) { loading = host(server, generation: 2); return loading != nil })
        let candidate = try #require(loading)
        #expect(ForkliftServer.eventually(timeout: 1.8) { ProcessTable.schedulingPolicy(of: candidate) == Self.idle })
        let result = try #require(try upgrade.wait()?.get())
        #expect(result.status == 0, "\(result.output)")
        #expect(ProcessTable.schedulingPolicy(of: candidate) == Self.normal, "raised before it went live")
        let stop = try Command.run(ForkliftServer.binary, ["stop", "--conf", conf])
        #expect(stop.status == 0, "\(stop.output)")
    }

    /// To normal, or to SCHED_BATCH for a pool with `process_scheduling = "batch"`; with
    /// "batch-when-idle", to normal, and its main thread under SCHED_BATCH once it waits.
    @Test(arguments: [("normal", Self.normal, Self.normal), ("batch", Self.batch, Self.batch), ("batch-when-idle", Self.batch, Self.normal)])
    func aWorkerForkedByALoweredHostRaisesItselfAndItsThreads(scheduling: String, waiting: Int32, threads expected: Int32) throws {
        let server = try startServer()
        defer { server.shutdown() }
        try server.writeConfig(config(behaviorSettings: "worker_thread = true", scheduling: scheduling))
        #expect(try server.reload().status == 0)
        let lowered = try #require(self.host(server, generation: 2))
        // Stands in for the master lowering a host just as it forks (its timer racing the
        // end of a preload): the host is idle, and a worker it forks inherits that.
        try CPUPriority.set(.idle, of: lowered)
        let old = server.workerPIDs()
        let victim = try #require(old.first)
        kill(victim, SIGKILL)
        var replacement: pid_t?
        #expect(ForkliftServer.eventually(timeout: 10) {
            replacement = server.workerPIDs().subtracting(old).first
            return replacement != nil
        })
        let worker = try #require(replacement)
        #expect(ForkliftServer.eventually(timeout: 5) { ProcessTable.threads(of: worker).count >= 2 }, "worker init started its thread")
        #expect(ForkliftServer.eventually(timeout: 5) { ProcessTable.schedulingPolicy(of: worker) == waiting }, "the worker, waiting")
        let threads = policies(ProcessTable.threads(of: worker).filter { $0 != worker })
        #expect(!threads.isEmpty && threads.allSatisfy { $0 == expected }, "the thread its worker init started: \(threads)")
        #expect(ProcessTable.schedulingPolicy(of: lowered) == Self.idle, "the host itself was left as the test set it")
    }
}
