import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `process_scheduling = "batch"`: a pool's workers run under SCHED_BATCH, and so do the
/// threads their plugins start in worker init; its host, and a pool with "normal", keep
/// SCHED_OTHER. The default, "batch-when-idle": a worker waits for connections under
/// SCHED_BATCH and serves under SCHED_OTHER, as do its plugin's threads and its waits on a kept
/// connection.
@Suite struct SchedulingTests {
    static let normal: Int32 = 0 // SCHED_OTHER
    static let batch: Int32 = 3 // SCHED_BATCH

    static let config = """
        [global]
        pid = "{dir}/forklift.pid"
        [pool.a]
        listen = "{dir}/a.sock"
        max_children = 2
        process_scheduling = "batch"
        [pool.a.plugin.behaviors]
        path = "{build}/libForkliftTestBehaviors.so"
        route = "/"
        settings = { worker_thread = true }
        [pool.b]
        listen = "{dir}/b.sock"
        max_children = 1
        process_scheduling = "normal"
        [pool.b.plugin.hello]
        path = "{build}/libHello.so"
        route = "/"
        """

    @Test func batchWorkersAndTheirThreadsUnderANormalHost() throws {
        let server = try ForkliftServer(config: Self.config)
        defer { server.shutdown() }
        let family = server.descendants()
        let hostA = try #require(family.first { $0.value.hasPrefix("forklift: host pool=a ") }?.key, "\(family)")
        let workersA = family.filter { $0.value.hasPrefix("forklift: worker pool=a ") }.map(\.key)
        let workersB = family.filter { $0.value.hasPrefix("forklift: worker pool=b ") }.map(\.key)
        #expect(workersA.count == 2 && workersB.count == 1, "\(family)")
        let threadsA = workersA.flatMap(ProcessTable.threads(of:))
        #expect(threadsA.count >= 4, "each worker and the thread its worker init started: \(threadsA)")
        #expect(threadsA.allSatisfy { ProcessTable.schedulingPolicy(of: $0) == Self.batch },
                "\(threadsA.map { ProcessTable.schedulingPolicy(of: $0) ?? -1 })")
        #expect(ProcessTable.schedulingPolicy(of: hostA) == Self.normal, "the host forks and supervises: normal")
        #expect(workersB.allSatisfy { ProcessTable.schedulingPolicy(of: $0) == Self.normal }, "process_scheduling = \"normal\", idle")
        #expect(try FastCGIClient.get(.unix(server.directory + "/a.sock"), "/").status == 200)

        // A worker forked later (a replacement) starts under SCHED_BATCH too, and its thread with it.
        let victim = try #require(workersA.first)
        kill(victim, SIGKILL)
        var replacement: pid_t?
        #expect(ForkliftServer.eventually(timeout: 10) {
            replacement = server.descendants().first { $0.value.hasPrefix("forklift: worker pool=a ") && !workersA.contains($0.key) }?.key
            return replacement != nil
        })
        let newWorker = try #require(replacement)
        #expect(ForkliftServer.eventually(timeout: 5) {
            let threads = ProcessTable.threads(of: newWorker)
            return threads.count >= 2 && threads.allSatisfy { ProcessTable.schedulingPolicy(of: $0) == Self.batch }
        }, "the replacement and the thread its worker init started")
    }

    @Test func byDefaultAWorkerWaitsForConnectionsUnderBatchAndServesAtNormalPriority() throws {
        let server = try ForkliftServer(config: """
            [global]
            pid = "{dir}/forklift.pid"
            [pool.www]
            listen = "{dir}/www.sock"
            max_children = 1
            [pool.www.plugin.behaviors]
            path = "{build}/libForkliftTestBehaviors.so"
            route = "/"
            settings = { worker_thread = true }
            """)
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let worker = try #require(server.workerPIDs().first)
        let family = server.descendants()
        let host = try #require(family.first { $0.value.hasPrefix("forklift: host pool=www ") }?.key, "\(family)")
        #expect(ForkliftServer.eventually(timeout: 5) { ProcessTable.schedulingPolicy(of: worker) == Self.batch },
                "idle, waiting for a connection: SCHED_BATCH")
        let others = ProcessTable.threads(of: worker).filter { $0 != worker }
        #expect(!others.isEmpty && others.allSatisfy { ProcessTable.schedulingPolicy(of: $0) == Self.normal },
                "the thread its worker init started keeps SCHED_OTHER: \(others.map { ProcessTable.schedulingPolicy(of: $0) ?? -1 })")
        #expect(ProcessTable.schedulingPolicy(of: host) == Self.normal, "the host")

        // Woken by a connection, it serves at normal priority, and waits under batch again after.
        let slow = InBackground { try FastCGIClient.get(address, "/sleep", query: "ms=3000") }
        #expect(ForkliftServer.eventually(timeout: 2.5) { ProcessTable.schedulingPolicy(of: worker) == Self.normal },
                "serving: SCHED_OTHER")
        #expect(try #require(slow.wait()).get().status == 200)
        #expect(ForkliftServer.eventually(timeout: 5) { ProcessTable.schedulingPolicy(of: worker) == Self.batch }, "idle again")

        // Waiting for the next request on a kept connection is serving it: normal priority.
        let kept = try FastCGIConnection(address)
        defer { kept.close() }
        #expect(try kept.get("/").status == 200)
        #expect(ProcessTable.schedulingPolicies(of: worker, over: 0.3) == [Self.normal], "waiting on a kept connection")
        kept.close()
        #expect(ForkliftServer.eventually(timeout: 5) { ProcessTable.schedulingPolicy(of: worker) == Self.batch },
                "the client gone, idle again")
    }
}
