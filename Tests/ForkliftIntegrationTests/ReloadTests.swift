import Foundation
import ForkliftTestSupport
import Testing

let versionOne = ForkliftServer.buildDirectory + "/libForkliftTestVersionOne.so"
let versionTwo = ForkliftServer.buildDirectory + "/libForkliftTestVersionTwo.so"

/// A pool serving the versioned plugin from `{dir}/versioned.so` and the misbehaving one.
func reloadConfig(children: Int = 2, behaviorSettings: String = "", reloadTimeout: String = "30s", global: String = "",
                  extra: String = "") -> String {
    """
    [global]
    pid = "{dir}/forklift.pid"
    log_level = "info"
    die_timeout = "10s"
    reload_timeout = "\(reloadTimeout)"
    \(global)
    [pool.www]
    listen = "{dir}/www.sock"
    max_children = \(children)
    [pool.www.plugin.versioned]
    path = "{dir}/versioned.so"
    route = "/v"
    [pool.www.plugin.behaviors]
    path = "{build}/libForkliftTestBehaviors.so"
    route = "/behaviors"
    settings = { \(behaviorSettings) }
    \(extra)
    """
}

/// docs/examples/hello_c.c, the plugin ABI's C example.
func cExampleSource() throws -> String {
    try String(contentsOfFile: ForkliftServer.packageRoot + "/docs/examples/hello_c.c", encoding: .utf8)
}

/// Builds a plugin from C sources with the system compiler, into `directory`; returns its path.
func buildCPlugin(_ sources: [String], in directory: String) throws -> String {
    let cc = try #require(Command.find("cc"), "a C compiler is needed")
    let files = try sources.enumerated().map { index, text in
        let path = directory + "/plugin\(index).c"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
    let output = directory + "/libbuilt.so"
    let build = try Command.run(cc, ["-shared", "-fPIC", "-Wall", "-Werror", "-I", ForkliftServer.packageRoot + "/Sources/CForkliftABI/include"] + files + ["-o", output])
    try #require(build.status == 0, "\(build.output)")
    return output
}

/// "version 2.0.0 host 1234" → ("2.0.0", 1234)
func versionAndHost(_ response: FastCGIResponse) -> (version: String, host: pid_t)? {
    let words = response.bodyText.split(whereSeparator: { $0 == " " || $0 == "\n" })
    guard words.count >= 4, words[0] == "version", let host = pid_t(words[3]) else { return nil }
    return (String(words[1]), host)
}

/// Clients sending requests back to back until told to stop, recording every outcome.
final class LoadGenerator: @unchecked Sendable {
    struct Outcome { let client: Int; let status: Int?; let error: String?; let version: String?; let host: pid_t? }

    private let lock = NSLock()
    private var outcomes: [Outcome] = []
    private var stopping = false
    private var running = 0

    init(clients: Int, address: FastCGIAddress, path: String) {
        running = clients
        for client in 0..<clients {
            Thread { [self] in
                while !lock.withLock({ stopping }) {
                    let outcome: Outcome
                    do {
                        let response = try FastCGIClient.get(address, path, timeout: 20)
                        let parsed = versionAndHost(response)
                        outcome = Outcome(client: client, status: response.status, error: nil, version: parsed?.version, host: parsed?.host)
                    } catch {
                        outcome = Outcome(client: client, status: nil, error: "\(error)", version: nil, host: nil)
                    }
                    lock.withLock { outcomes.append(outcome) }
                }
                lock.withLock { running -= 1 }
            }.start()
        }
    }

    func stop() -> [Outcome] {
        lock.withLock { stopping = true }
        _ = ForkliftServer.eventually(timeout: 30) { lock.withLock { running == 0 } }
        return lock.withLock { outcomes }
    }
}

@Suite(.serialized) struct ReloadTests {
    @Test func tenReloadsUnderLoadLoseNothingAndSwitchVersionsInOrder() throws {
        let server = try ForkliftServer(config: reloadConfig(children: 4)) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let load = LoadGenerator(clients: 4, address: address, path: "/v")

        var expected = "1.0.0"
        for round in 1...10 {
            usleep(100_000)
            expected = round % 2 == 1 ? "2.0.0" : "1.0.0"
            try server.install(expected == "2.0.0" ? versionTwo : versionOne, as: "versioned.so")
            let result = try server.reload()
            #expect(result.status == 0, "reload \(round): \(result.output)")
            #expect(result.output.contains("pool www gen \(round + 1)"), "\(result.output)")
            #expect(result.output.contains("versioned@\(expected)"), "the reload reports plugin versions: \(result.output)")
            let after = try FastCGIClient.get(address, "/v")
            #expect(versionAndHost(after)?.version == expected, "right after reload \(round)")
        }
        usleep(100_000)
        let outcomes = load.stop()

        #expect(outcomes.count > 100, "the clients kept sending: \(outcomes.count) requests")
        let failures = outcomes.filter { $0.error != nil || ($0.status ?? 500) >= 500 }
        #expect(failures.isEmpty, "\(failures.count) failed: \(failures.prefix(5).map { $0.error ?? "status \($0.status!)" })")
        #expect(Set(outcomes.compactMap(\.version)) == ["1.0.0", "2.0.0"])

        // In order: each client sees generations that never go back.
        let generations = server.hostGenerations()
        for client in 0..<4 {
            let seen = outcomes.filter { $0.client == client }.compactMap { $0.host.flatMap { generations[$0] } }
            let steps = seen.enumerated().filter { $0.offset == 0 || seen[$0.offset - 1] != $0.element }.map(\.element)
            #expect(seen == seen.sorted(), "client \(client) went back to an older generation: \(steps)")
            #expect(seen.last == 11, "client \(client) ends on the last generation")
        }
        #expect(!server.log.contains("was killed by"), "no worker crashed")
    }

    @Test func aSlowRequestOnTheOldGenerationCompletesAfterReload() throws {
        let server = try ForkliftServer(config: reloadConfig()) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let slow = backgroundRequest(address, "/behaviors/sleep", query: "ms=1500")
        usleep(300_000)
        try server.install(versionTwo, as: "versioned.so")
        let result = try server.reload()
        #expect(result.status == 0, "\(result.output)")
        #expect(versionAndHost(try FastCGIClient.get(address, "/v"))?.version == "2.0.0", "new code serves at once")

        let response = try #require(try slow.wait()?.get())
        #expect(response.status == 200)
        #expect(response.bodyText.hasSuffix("\nend\n"), "the old generation finished the request it had")
        try server.waitForLog("pool www gen 1 (host pid")
        #expect(ForkliftServer.eventually { server.log.contains("drained") })
    }

    enum Breakage: String, CaseIterable, CustomTestStringConvertible {
        case notAPlugin, wrongABIVersion, otherSwiftToolchain, preloadThrows, preloadCrashes, workerInitFails, workerInitCrashes,
             notReadyInTime, brokenConfiguration
        var testDescription: String { rawValue }
    }

    @Test(arguments: Breakage.allCases)
    func aBrokenReloadRollsBackAndTheOldVersionKeepsServing(breakage: Breakage) throws {
        let server = try ForkliftServer(config: reloadConfig()) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let expectedCause: String
        switch breakage {
        case .notAPlugin:
            try server.install(ForkliftServer.buildDirectory + "/libForkliftTestNotAPlugin.so", as: "versioned.so")
            expectedCause = "does not export forklift_plugin_entry"
        case .wrongABIVersion:
            // The C example, claiming a plugin ABI this forklift does not speak.
            let source = try cExampleSource().replacingOccurrences(of: ".abi_version = FORKLIFT_ABI_VERSION,", with: ".abi_version = 99,")
            try server.install(try buildCPlugin([source], in: server.directory), as: "versioned.so")
            expectedCause = "was built for plugin ABI version 99, but this forklift speaks version 1"
        case .otherSwiftToolchain:
            // The C example, with the record a Swift compiler leaves in .comment, of another release.
            let record = #"__asm__(".section .comment,\"MS\",@progbits,1\n.asciz \"clang version 1.0.0 (https://github.com/swiftlang/llvm-project.git 0123456789)\"\n.previous");"#
            // First on the command line: its record comes first in .comment, even if cc is a clang.
            try server.install(try buildCPlugin([record, try cExampleSource()], in: server.directory), as: "versioned.so")
            expectedCause = "was built with a different Swift toolchain: found clang version 1.0.0"
        case .preloadThrows:
            try server.writeConfig(reloadConfig(behaviorSettings: "fail_preload = true"))
            expectedCause = "preload failed on purpose"
        case .preloadCrashes:
            try server.writeConfig(reloadConfig(behaviorSettings: "crash_in_preload = true"))
            expectedCause = "was killed by SIGABRT"
        case .workerInitFails:
            try server.writeConfig(reloadConfig(behaviorSettings: "fail_worker_init = true"))
            expectedCause = "worker init failed on purpose"
        case .workerInitCrashes:
            try server.writeConfig(reloadConfig(behaviorSettings: "crash_in_worker_init = true"))
            expectedCause = "was killed by SIGABRT"
        case .notReadyInTime:
            try server.writeConfig(reloadConfig(behaviorSettings: "worker_init_sleep_ms = 5000", reloadTimeout: "1s"))
            expectedCause = "not ready within reload_timeout (1.0 s)"
        case .brokenConfiguration:
            try server.writeConfig(reloadConfig() + "\n[pool.www.oops\n")
            expectedCause = "configuration error"
        }
        let result = try server.reload()
        #expect(result.status != 0)
        #expect(result.output.contains(expectedCause), "\(result.output)")

        for _ in 0..<5 {
            let response = try FastCGIClient.get(address, "/v")
            #expect(response.status == 200)
            #expect(versionAndHost(response)?.version == "1.0.0")
        }
        #expect(server.log.contains(expectedCause))
        let generations = server.hostGenerations()
        let live = server.descendants().filter { $0.value.hasPrefix("forklift: host") }.keys.compactMap { generations[$0] }
        #expect(ForkliftServer.eventually { server.descendants().values.filter { $0.hasPrefix("forklift: host") }.count == 1 },
                "the failed generation is gone: \(server.descendants())")
        #expect(live.contains(1), "generation 1 still serves")
        #expect(server.process.isRunning)
    }

    @Test func copyingOverTheLoadedPluginCrashesNothingAndTheNextReloadServesIt() throws {
        let server = try ForkliftServer(config: reloadConfig(children: 2)) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        let workers = server.workerPIDs()

        // cp writes the new bytes into the very file the generation was loaded from.
        let cp = try Command.run("/bin/cp", [versionTwo, server.directory + "/versioned.so"])
        #expect(cp.status == 0)
        for _ in 0..<20 {
            let response = try FastCGIClient.get(address, "/v")
            #expect(response.status == 200)
            #expect(versionAndHost(response)?.version == "1.0.0", "the running generation runs its own copy")
        }
        #expect(server.workerPIDs() == workers, "no worker crashed or was replaced")
        #expect(!server.log.contains("was killed by"))

        let result = try server.reload()
        #expect(result.status == 0, "\(result.output)")
        #expect(versionAndHost(try FastCGIClient.get(address, "/v"))?.version == "2.0.0")
    }

    @Test func socketsFollowTheConfiguration() throws {
        func pools(_ names: [(String, String)]) -> String {
            "[global]\npid = \"{dir}/forklift.pid\"\nlog_level = \"info\"\n" + names.map { name, socket in
                "[pool.\(name)]\nlisten = \"{dir}/\(socket)\"\nmax_children = 1\n[pool.\(name).plugin.hello]\npath = \"{build}/libHello.so\"\nroute = \"/\"\nsettings = { greeting = \"\(name)\" }\n"
            }.joined()
        }
        let server = try ForkliftServer(config: pools([("a", "a.sock"), ("b", "b.sock")]))
        defer { server.shutdown() }
        let dir = server.directory
        #expect(try FastCGIClient.get(.unix(dir + "/a.sock"), "/").bodyText == "a, world!\n")
        #expect(try FastCGIClient.get(.unix(dir + "/b.sock"), "/").bodyText == "b, world!\n")

        try server.writeConfig(pools([("a", "a2.sock"), ("c", "c.sock")])) // a moves, b goes, c comes
        let result = try server.reload()
        #expect(result.status == 0, "\(result.output)")
        #expect(try FastCGIClient.get(.unix(dir + "/a2.sock"), "/").bodyText == "a, world!\n")
        #expect(try FastCGIClient.get(.unix(dir + "/c.sock"), "/").bodyText == "c, world!\n")
        #expect(!FileManager.default.fileExists(atPath: dir + "/a.sock"), "a's old socket is closed and removed")
        #expect(!FileManager.default.fileExists(atPath: dir + "/b.sock"), "the removed pool's socket is closed and removed")
        #expect(ForkliftServer.eventually { !server.descendants().values.contains { $0.contains("pool=b") } }, "pool b drained")
    }

    /// A live host dies while a reload is loading its replacement: once the reload commits,
    /// the master must go back to sleeping, not poll with a timeout stuck in the past.
    @Test func aHostDyingDuringAReloadLeavesTheMasterIdle() throws {
        let server = try ForkliftServer(config: reloadConfig()) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        try server.writeConfig(reloadConfig(behaviorSettings: "worker_init_sleep_ms = 2500"))
        server.signal(SIGHUP)
        try server.waitForLog("started host pid", timeout: 5)
        let liveHost = try #require(server.hostGenerations().first { $0.value == 1 }?.key)
        usleep(200_000)
        kill(liveHost, SIGKILL)
        // The reload's candidate is gated until its commit: a replacement host must serve
        // the pool meanwhile, with the configuration still in force.
        let during = try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/v", timeout: 2)
        #expect(versionAndHost(during)?.version == "1.0.0")
        try server.waitForLog("reloaded in", timeout: 10)
        usleep(1_500_000) // past any restart delay
        let before = ProcessTable.cpuTicks(of: server.pid)
        usleep(1_000_000)
        let used = ProcessTable.cpuTicks(of: server.pid) - before
        #expect(used < 20, "the master used \(used) ticks of CPU in one idle second")
        #expect(try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/v").status == 200)
    }

    /// A reload asked for while another runs must read the files as they are then.
    @Test func aReloadDuringAReloadLoadsTheNewerFiles() throws {
        let server = try ForkliftServer(config: reloadConfig()) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        try server.writeConfig(reloadConfig(behaviorSettings: "worker_init_sleep_ms = 1000"))
        server.signal(SIGHUP) // the first reload, slow to get ready, still with version 1
        try server.waitForLog("started host pid", timeout: 5)
        usleep(200_000)
        try server.install(versionTwo, as: "versioned.so")
        try server.writeConfig(reloadConfig())
        let result = try server.reload()
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("versioned@2.0.0"), "answered by the reload that read the new file: \(result.output)")
        #expect(versionAndHost(try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/v"))?.version == "2.0.0")
    }

    @Test func hupAndUsr2ReloadLikeTheCommand() throws {
        let server = try ForkliftServer(config: reloadConfig()) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        let address = FastCGIAddress.unix(server.directory + "/www.sock")
        try server.install(versionTwo, as: "versioned.so")
        server.signal(SIGHUP)
        #expect(ForkliftServer.eventually { versionAndHost((try? FastCGIClient.get(address, "/v"))!)?.version == "2.0.0" })
        try server.install(versionOne, as: "versioned.so")
        server.signal(SIGUSR2)
        #expect(ForkliftServer.eventually { versionAndHost((try? FastCGIClient.get(address, "/v"))!)?.version == "1.0.0" })
        try server.waitForLog("reloaded in")
    }

    @Test func stopThroughTheControlSocketWaitsForTheExit() throws {
        let server = try ForkliftServer(config: reloadConfig()) { try FileManager.default.copyItem(atPath: versionOne, toPath: $0 + "/versioned.so") }
        defer { server.shutdown() }
        let result = try Command.run(ForkliftServer.binary, ["stop", "--conf", server.configurationDirectory])
        #expect(result.status == 0)
        #expect(result.output.contains("stopped, exit status 0"))
        #expect(server.waitForExit(timeout: 5) == 0)

        let again = try Command.run(ForkliftServer.binary, ["reload", "--conf", server.configurationDirectory])
        #expect(again.status != 0)
        #expect(again.output.contains("is forklift running?"), "\(again.output)")
    }
}
