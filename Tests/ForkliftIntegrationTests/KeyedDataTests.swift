import Foundation
import ForkliftTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Keyed shared data across reloads (docs/shared-data.md): the versioned plugins build their
/// numbers with `context.sharedData(key:)`; a reload to the other build with the same key maps
/// the running generation's memfd instead of building, a new key builds afresh, and the old
/// data goes once its generation drained.
@Suite struct KeyedDataTests {
    func config(key: String, format: Int = 1, failing: Bool = false) -> String {
        """
        [global]
        pid = "{dir}/forklift.pid"
        log_level = "info"
        die_timeout = "10s"
        [pool.www]
        listen = "{dir}/www.sock"
        max_children = 2
        [pool.www.plugin.versioned]
        path = "{dir}/versioned.so"
        route = "/v"
        settings = { data_key = "\(key)", data_kb = 512, data_format = \(format), data_fail = \(failing) }
        """
    }

    func start(key: String) throws -> ForkliftServer {
        try ForkliftServer(config: config(key: key)) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
    }

    /// "version V data count N sum S at A" → (V, "count N sum S", A)
    func data(_ server: ForkliftServer) throws -> (version: String, content: String, address: String) {
        let response = try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/v/data")
        let words = response.bodyText.split(whereSeparator: \.isWhitespace).map(String.init)
        try #require(response.status == 200 && words.count == 9, "\(response.bodyText)")
        return (words[1], words[3...6].joined(separator: " "), words[8])
    }

    /// The inodes of the keyed-data memfds `pid` maps, by memfd name.
    func mappedData(_ pid: pid_t) -> [String: String] {
        let maps = (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? ""
        var result: [String: String] = [:]
        for line in maps.split(separator: "\n") where line.contains("/memfd:forklift-data:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 6 { result[String(fields[5])] = String(fields[4]) }
        }
        return result
    }

    /// The keyed-data memfds the master holds open.
    func masterDescriptors(_ server: ForkliftServer) -> [String] {
        let directory = "/proc/\(server.pid)/fd"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + fd)).flatMap { $0.contains("forklift-data:") ? $0 : nil }
        }
    }

    func builds(_ server: ForkliftServer, key: String) -> Int {
        server.log.components(separatedBy: "keyed data built for key \(key) ").count - 1
    }

    @Test func aReloadWithTheSameKeyMapsTheRunningGenerationsDataAndRunsNewCode() throws {
        let server = try start(key: "numbers-1")
        defer { server.shutdown() }
        let before = try data(server)
        #expect(before.version == "1.0.0")
        let oldWorker = try #require(server.workerPIDs().first)
        let oldMapping = mappedData(oldWorker)
        #expect(oldMapping.count == 1, "a worker maps the data from its memfd: \(oldMapping)")
        #expect(builds(server, key: "numbers-1") == 1)

        try server.install(versionTwo, as: "versioned.so")
        let reload = try server.reload()
        #expect(reload.status == 0, "\(reload.output)")
        let after = try data(server)
        #expect(after.version == "2.0.0", "the new code serves")
        #expect(after.content == before.content && after.address == before.address, "the same bytes at the same address: \(before) \(after)")
        #expect(builds(server, key: "numbers-1") == 1, "the builder did not run again:\n\(server.log)")
        #expect(server.log.contains("numbers-1 handed on by generation 1"))
        try server.waitForLog("pool www gen 1 (host pid")
        #expect(ForkliftServer.eventually { server.log.contains("drained") })
        let newWorker = try #require(server.workerPIDs().first)
        #expect(mappedData(newWorker) == oldMapping, "the new generation maps the very memfd (same inode)")
        #expect(masterDescriptors(server).count == 1, "the master keeps it for the next generation")
        let status = try server.command(["status"])
        #expect(status.output.contains("shared data pool www plugin versioned key numbers-1") && status.output.contains("built by gen 1, used by gen 2"),
                "\(status.output)")

        // A third generation, back to the first build: still the first generation's data.
        try server.install(versionOne, as: "versioned.so")
        #expect(try server.reload().status == 0)
        #expect(try data(server) == (version: "1.0.0", content: before.content, address: before.address))
        #expect(builds(server, key: "numbers-1") == 1)
    }

    @Test func aNewKeyOrFormatBuildsAfreshAndTheOldDataGoesWithItsGeneration() throws {
        let server = try start(key: "numbers-1")
        defer { server.shutdown() }
        let first = try data(server)
        try server.writeConfig(config(key: "numbers-2"))
        #expect(try server.reload().status == 0)
        let second = try data(server)
        #expect(builds(server, key: "numbers-2") == 1, "a new key runs the builder")
        #expect(second.content == first.content && second.address != first.address, "built again, beside the old data: \(first) \(second)")
        #expect(ForkliftServer.eventually { masterDescriptors(server).count == 1 && masterDescriptors(server)[0].contains("numbers-2") },
                "the old data is released once its generation drained: \(masterDescriptors(server))")
        let worker = try #require(server.workerPIDs().first)
        #expect(mappedData(worker).keys.allSatisfy { $0.contains("numbers-2") })

        // Same key, other format: the layout changed, so it is built again.
        try server.writeConfig(config(key: "numbers-2", format: 2))
        #expect(try server.reload().status == 0)
        #expect(builds(server, key: "numbers-2") == 2)
        #expect(server.log.contains("it is of format 1, the plugin reads format 2; building it afresh"), "\(server.log)")
    }

    @Test func aNewKeyWhoseBuilderFailsRollsBackAndTheRunningDataStays() throws {
        let server = try start(key: "numbers-1")
        defer { server.shutdown() }
        let before = try data(server)
        try server.writeConfig(config(key: "numbers-2", failing: true))
        let reload = try server.reload()
        #expect(reload.status != 0 && reload.output.contains("the numbers cannot be had"), "\(reload.output)")
        #expect(try data(server) == before, "the running generation serves its data")
        #expect(ForkliftServer.eventually { masterDescriptors(server).count == 1 && masterDescriptors(server)[0].contains("numbers-1") },
                "the failed generation's memfd is not kept: \(masterDescriptors(server))")
        // The next good reload with the old key still inherits.
        try server.writeConfig(config(key: "numbers-1"))
        #expect(try server.reload().status == 0)
        #expect(try data(server) == before && builds(server, key: "numbers-1") == 1)
    }

    @Test func aBinaryUpgradeHandsTheDataToTheNewMastersGenerations() throws {
        let server = try start(key: "numbers-1")
        defer { server.shutdown() }
        let before = try data(server)
        let result = try Command.run(ForkliftServer.binary, ["upgrade", "--conf", server.configurationDirectory])
        #expect(result.status == 0, "\(result.output)")
        #expect(server.waitForExit(timeout: 20) == 0, "the old master drains and exits")
        let newMaster = try #require(pid_t(try String(contentsOfFile: server.directory + "/forklift.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(newMaster, SIGTERM) } // not the test's child: shutdown() would not stop it
        #expect(try data(server) == before, "the new master's generation serves the same bytes at the same address")
        #expect(builds(server, key: "numbers-1") == 1, "inherited across the exec, not built again:\n\(server.log)")
        // The new master keeps it for its own reloads.
        #expect(kill(newMaster, SIGHUP) == 0)
        #expect(ForkliftServer.eventually { server.log.components(separatedBy: "numbers-1 handed on by generation 1").count == 3 },
                "generation 2 (the new master's first) and 3 both inherited it:\n\(server.log)")
        #expect(builds(server, key: "numbers-1") == 1)
    }

    @Test func aWorkerWritingIntoHandedOnDataDiesAloneNamingIt() throws {
        let server = try start(key: "numbers-1")
        defer { server.shutdown() }
        try server.install(versionTwo, as: "versioned.so")
        #expect(try server.reload().status == 0)
        #expect(try data(server).version == "2.0.0")
        let host = try #require(server.hostGenerations().first { $0.value == 2 }?.key)
        #expect(throws: (any Error).self) { _ = try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/v/write-data") }
        try server.waitForLog("SIGSEGV writing to read-only shared memory of plugin versioned (shared data, key numbers-1, handed on)")
        #expect(try data(server).version == "2.0.0", "the pool goes on serving")
        #expect(ProcessTable.isAlive(host) && ProcessTable.isAlive(server.pid), "the host and the master live on")
    }
}
