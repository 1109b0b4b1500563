import Foundation
import ForkliftTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Processes plugins start (POE::Component::Daemon's foreign children): the SDK's
/// `SpawnedProcess` starts them clean, and nothing a plugin started outlives its worker or a
/// stop, whether it was spawned the SDK's way or forked by hand inside a handler.
@Suite struct ForeignChildrenTests {
    func config(maxRequests: Int = 0) -> String {
        """
        [global]
        pid = "{dir}/forklift.pid"
        log_level = "info"
        die_timeout = "10s"
        [pool.www]
        listen = "{dir}/www.sock"
        max_children = 1
        max_requests = \(maxRequests)
        [pool.www.plugin.behaviors]
        path = "{build}/libForkliftTestBehaviors.so"
        route = "/behaviors"
        """
    }

    /// "spawned 123 from 45" → (123, 45)
    func start(_ server: ForkliftServer, _ how: String) throws -> (child: pid_t, worker: pid_t) {
        let response = try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/behaviors/\(how)")
        let words = response.bodyText.split(separator: " ")
        let child = try #require(words.count == 4 ? pid_t(words[1]) : nil, "\(response.bodyText)")
        let worker = try #require(pid_t(words[3].dropLast()))
        return (child, worker)
    }

    func status(_ pid: pid_t, _ field: String) -> String? {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").first { $0.hasPrefix(field + ":") }.map { $0.dropFirst(field.count + 1).trimmingCharacters(in: .whitespaces) }
    }

    func wchan(_ pid: pid_t) -> String {
        (try? String(contentsOfFile: "/proc/\(pid)/wchan", encoding: .utf8)) ?? ""
    }

    @Test func aSpawnedHelperStartsCleanAndNothingAPluginStartedOutlivesAStop() throws {
        let server = try ForkliftServer(config: config())
        defer { server.shutdown() }
        let spawned = try start(server, "spawn")
        let forked = try start(server, "fork")
        #expect(ForkliftServer.eventually { ProcessTable.title(of: spawned.child) == "/bin/sleep" }, "the program's own title, not the worker's")
        // Asleep in its own main: until then the dynamic loader may hold a library it is
        // loading open (as descriptor 3), which is not the worker's.
        #expect(ForkliftServer.eventually { wchan(spawned.child).contains("nanosleep") }, "the program reached its sleep: \(wchan(spawned.child))")
        #expect(status(spawned.child, "SigBlk") == "0000000000000000", "no signal blocked in the helper")
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(spawned.child)/fd")) ?? []
        #expect(Set(descriptors).isSubset(of: ["0", "1", "2"]), "none of the worker's sockets: \(descriptors)")
        let blocked = UInt64(status(forked.child, "SigBlk") ?? "0", radix: 16) ?? 0
        #expect(blocked & (1 << (UInt64(SIGTERM) - 1)) != 0, "a child forked by hand in a handler blocks TERM, as its worker did")

        server.signal(SIGTERM)
        #expect(server.waitForExit() == 0)
        #expect(ForkliftServer.eventually(timeout: 10) { !ProcessTable.isAlive(spawned.child) && !ProcessTable.isAlive(forked.child) },
                "both are gone after the stop: \(ProcessTable.title(of: spawned.child) ?? "-") \(ProcessTable.title(of: forked.child) ?? "-")")
    }

    @Test func whatARecycledWorkerLeavesBehindIsAdoptedByTheHostAndStopped() throws {
        let server = try ForkliftServer(config: config(maxRequests: 1))
        defer { server.shutdown() }
        let host = try #require(server.descendants().first { $0.value.hasPrefix("forklift: host") }?.key)
        let spawned = try start(server, "spawn") // the worker leaves after this request
        try server.waitForLog("TERM to pid \(spawned.child) (sleep), a process a plugin started in a worker that is gone")
        #expect(ForkliftServer.eventually { !ProcessTable.isAlive(spawned.child) })

        let forked = try start(server, "fork")
        #expect(ForkliftServer.eventually { status(forked.child, "PPid") == "\(host)" }, "adopted by the host, not by init")
        try server.waitForLog("KILL to pid \(forked.child)", timeout: 20)
        #expect(ForkliftServer.eventually { !ProcessTable.isAlive(forked.child) }, "TERM is blocked in it: KILL after the grace")
        #expect(ProcessTable.isAlive(host), "the pool serves on")
    }
}
