import Foundation
import ForkliftTestSupport
import Testing

/// What /proc/PID/smaps_rollup says, in bytes.
func smaps(_ pid: pid_t) -> [String: Int] {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return [:] }
    var values: [String: Int] = [:]
    for line in text.split(separator: "\n") {
        let parts = line.split(whereSeparator: { $0 == " " || $0 == ":" })
        if parts.count >= 2, let kib = Int(parts[1]) { values[String(parts[0])] = kib * 1024 }
    }
    return values
}

@Suite(.serialized) struct SharedMemoryTests {
    @Test func aPreloadedDictionaryStaysSharedAcrossWorkers() throws {
        let server = try ForkliftServer(config: """
            [global]
            pid = "{dir}/forklift.pid"
            log_level = "info"
            [pool.www]
            listen = "{dir}/www.sock"
            max_children = 4
            memory_log_interval = "1s"
            [pool.www.plugin.dict]
            path = "{build}/libDictionary.so"
            route = "/dict"
            settings = { size_mb = 64 }
            """)
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let stats = try FastCGIClient.get(address, "/dict/stats").bodyText
        let words = try #require(Int(stats.split(separator: " ")[1]))

        // 2,000 lookups from 4 clients at once, so that every worker serves some.
        let group = DispatchGroup()
        let failures = Counter()
        for client in 0..<4 {
            group.enter()
            Thread {
                for i in 0..<500 {
                    let word = "word-\((i * 7919 + client * 104_729) % words)"
                    if (try? FastCGIClient.get(address, "/dict/\(word)"))?.status != 200 { failures.increment() }
                }
                group.leave()
            }.start()
        }
        group.wait()
        #expect(failures.value == 0)
        #expect(try FastCGIClient.get(address, "/dict/no-such-word").status == 404)

        let workers = server.workerPIDs()
        #expect(workers.count == 4)
        let host = try #require(server.descendants().first { $0.value.hasPrefix("forklift: host") }?.key)
        var totalPss = smaps(host)["Pss"] ?? 0
        for worker in workers {
            let memory = smaps(worker)
            #expect((memory["Private_Dirty"] ?? .max) < 8 << 20, "worker \(worker): Private_Dirty \(memory["Private_Dirty"] ?? -1)")
            totalPss += memory["Pss"] ?? 0
        }
        #expect(totalPss < 2 * (64 << 20), "the pool's total Pss is \(totalPss >> 20) MiB for a 64 MiB dataset")
        try server.waitForLog("memory of pool www gen 1 (host and 4 workers): Pss")
        let status = try Command.run(ForkliftServer.binary, ["status", "--conf", server.configurationDirectory])
        #expect(status.output.contains("memory: Pss "), "\(status.output)")
        #expect(status.output.contains("(4 workers)"), "\(status.output)")
    }

    @Test func writingToSealedPreloadedDataKillsOnlyThatWorkerAndSaysWhy() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 2))
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let before = server.workerPIDs()

        #expect(throws: (any Error).self, "the request fails: its worker died") {
            _ = try FastCGIClient.get(address, "/behaviors/scribble", timeout: 10)
        }
        try server.waitForLog("writing to read-only shared memory of plugin behaviors (shared arena behaviors)")
        try server.waitForLog("was killed by SIGSEGV")
        #expect(ForkliftServer.eventually { server.workerPIDs().count == 2 && server.workerPIDs() != before }, "replaced")
        for _ in 0..<5 { #expect(try FastCGIClient.get(address, "/hello").status == 200) }
    }

    @Test func warmUpRunsOnceInTheHostBeforeFork() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 2))
        defer { server.shutdown() }
        // "warmed up in H, worker of H"
        let text = try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/behaviors/warmup").bodyText
        let pids = text.split(whereSeparator: { !$0.isNumber }).compactMap { pid_t($0) }
        #expect(pids.count == 2 && pids[0] == pids[1], "warmUp ran in the host that forked this worker: \(text)")
        #expect(server.descendants()[pids.first ?? 0]?.hasPrefix("forklift: host") == true)
    }

    @Test func aPreloadThatStartsAThreadIsRefused() throws {
        let result = try forklift("run", config: pluginConfig(path: "{build}/libForkliftTestBehaviors.so", settings: "settings = { start_thread = true }"))
        #expect(result.status == 1)
        #expect(result.output.contains("plugin p: the host has 2 threads after its preload; a process with threads cannot fork safely"), "\(result.output)")
    }

    @Test func aWorkerAboveMaxPrivateMemoryIsRecycled() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 1)
            .replacingOccurrences(of: "max_requests = 0", with: "max_requests = 0\nmax_private_memory = \"32M\""))
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let before = server.workerPIDs()
        #expect(try FastCGIClient.get(address, "/behaviors/leak", query: "mb=48").status == 200)
        try server.waitForLog("above max_private_memory (32.0 MiB): it finishes its request and is replaced", timeout: 10)
        try server.waitForLog("left after exceeding max_private_memory")
        #expect(ForkliftServer.eventually { let now = server.workerPIDs(); return now.count == 1 && now != before })
        #expect(try FastCGIClient.get(address, "/hello").status == 200)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
