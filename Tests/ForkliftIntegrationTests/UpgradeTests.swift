import Foundation
import ForkliftTestSupport
import Testing

@Suite(.serialized) struct UpgradeTests {
    @Test func aBinaryUpgradeUnderLoadLosesNoRequest() throws {
        let server = try ForkliftServer(config: reloadConfig(children: 3), executable: "{dir}/bin/forklift") { dir in
            try FileManager.default.copyItem(atPath: versionOne, toPath: dir + "/versioned.so")
            try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: ForkliftServer.binary, toPath: dir + "/bin/forklift")
        }
        defer { server.shutdown() }
        let dir = server.directory
        let oldMaster = server.pid
        let load = LoadGenerator(clients: 4, address: .unix(dir + "/www.sock"), path: "/v")
        usleep(200_000)

        // Deploy the new binary the safe way, then hand over to it.
        try server.install(ForkliftServer.binary, as: "bin/forklift")
        let result = try Command.run(dir + "/bin/forklift", ["upgrade", "--conf", server.configurationDirectory])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("upgraded: the new master is pid"))
        #expect(server.waitForExit(timeout: 20) == 0, "the old master drains and exits 0")

        let pidText = try String(contentsOfFile: dir + "/forklift.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let newMaster = try #require(pid_t(pidText))
        #expect(newMaster != oldMaster)
        #expect(ProcessTable.isAlive(newMaster))
        #expect(ProcessTable.title(of: newMaster) == "forklift: master")
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(newMaster)/exe")) ?? ""
        #expect(exe == dir + "/bin/forklift", "the new master runs the file now on disk, not the replaced one: \(exe)")

        usleep(300_000)
        let outcomes = load.stop()
        #expect(outcomes.count > 50)
        let failures = outcomes.filter { $0.error != nil || ($0.status ?? 500) >= 500 }
        #expect(failures.isEmpty, "\(failures.count) failed: \(failures.prefix(5).map { $0.error ?? "status \($0.status!)" })")
        #expect(FileManager.default.fileExists(atPath: dir + "/www.sock"), "the socket file stays, owned by the new master")

        let status = try Command.run(dir + "/bin/forklift", ["status", "--conf", server.configurationDirectory])
        #expect(status.output.contains("pool www gen 2 live"), "generation numbers continue: \(status.output)")
        // The strict switch: the old master retires its generation before the new one serves.
        let lines = server.log.components(separatedBy: "\n")
        let retiring = lines.firstIndex { $0.contains("retiring this master's generations") }
        let serving = lines.firstIndex { $0.contains("the previous master retired its generations: serving") }
        let live = lines.firstIndex { $0.contains("pool www gen 2 (host pid") && $0.hasSuffix("is live") }
        #expect(retiring != nil && serving != nil && live != nil, "\(server.log)")
        if let retiring, let serving, let live { #expect(retiring < serving && serving < live) }
        let stop = try Command.run(dir + "/bin/forklift", ["stop", "--conf", server.configurationDirectory])
        #expect(stop.status == 0, "\(stop.output)")
        #expect(ForkliftServer.eventually { !ProcessTable.isAlive(newMaster) })
    }

    @Test func anUpgradeToABinaryThatFailsKeepsTheOldMaster() throws {
        let server = try ForkliftServer(config: reloadConfig(), executable: "{dir}/bin/forklift") { dir in
            try FileManager.default.copyItem(atPath: versionOne, toPath: dir + "/versioned.so")
            try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: ForkliftServer.binary, toPath: dir + "/bin/forklift")
        }
        defer { server.shutdown() }
        let dir = server.directory
        // A "binary" that dies at once.
        try "#!/bin/sh\necho broken build >&2\nexit 3\n".write(toFile: dir + "/bin/forklift.new", atomically: true, encoding: .utf8)
        chmod(dir + "/bin/forklift.new", 0o755)
        let client = dir + "/bin/forklift-client"
        try FileManager.default.copyItem(atPath: ForkliftServer.binary, toPath: client)
        #expect(rename(dir + "/bin/forklift.new", dir + "/bin/forklift") == 0)

        let result = try Command.run(client, ["upgrade", "--conf", server.configurationDirectory])
        #expect(result.status != 0)
        #expect(result.output.contains("upgrade failed, the running master keeps serving"), "\(result.output)")
        #expect(server.process.isRunning)
        #expect(versionAndHost(try FastCGIClient.get(.unix(dir + "/www.sock"), "/v"))?.version == "1.0.0")
        let reload = try Command.run(client, ["reload", "--conf", server.configurationDirectory])
        #expect(reload.status == 0, "the old master still takes commands: \(reload.output)")
    }

    /// The new binary starts, takes the sockets over, then fails to load its generation: the
    /// socket files, the control socket and the pid file must stay the old master's.
    @Test func aNewMasterThatCannotStartLeavesTheOldOneItsFiles() throws {
        let server = try ForkliftServer(config: reloadConfig()) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        let dir = server.directory
        try server.writeConfig(reloadConfig(behaviorSettings: "fail_preload = true"))
        let result = try Command.run(ForkliftServer.binary, ["upgrade", "--conf", server.configurationDirectory])
        #expect(result.status != 0)
        #expect(result.output.contains("upgrade failed, the running master keeps serving"), "\(result.output)")
        #expect(result.output.contains("preload failed on purpose"), "the new master's own reason is reported: \(result.output)")

        #expect(try String(contentsOfFile: dir + "/forklift.pid", encoding: .utf8).hasPrefix("\(server.pid)"))
        #expect(versionAndHost(try FastCGIClient.get(.unix(dir + "/www.sock"), "/v"))?.version == "1.0.0")
        try server.writeConfig(reloadConfig())
        let status = try Command.run(ForkliftServer.binary, ["status", "--conf", server.configurationDirectory])
        #expect(status.status == 0, "the control socket still reaches the old master: \(status.output)")
    }
}
