import Foundation
import ForkliftTestSupport
import Testing

/// Runs `forklift check` (or another subcommand) on a configuration.
func forklift(_ subcommand: String, config: String, files: [String: String] = [:]) throws -> Command.Result {
    let directory = try TemporaryDirectory.make()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
    try ForkliftServer.expand(config, directory: directory).write(toFile: directory + "/conf.d/10-test.toml", atomically: true, encoding: .utf8)
    for (name, contents) in files {
        try contents.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }
    return try Command.run(ForkliftServer.binary, [subcommand, "--conf", directory + "/conf.d"])
}

func pluginConfig(path: String, settings: String = "") -> String {
    """
    [global]
    pid = "{dir}/forklift.pid"
    die_timeout = 5
    [pool.www]
    listen = "{dir}/www.sock"
    max_children = 1
    [pool.www.plugin.p]
    path = "\(path)"
    route = "/"
    \(settings)
    """
}

@Suite struct CheckTests {
    @Test func theShippedExamplePluginsPass() throws {
        let result = try forklift("check", config: poolConfig(listen: "{dir}/www.sock"))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("hello version 1.0.0, ABI ok"))
        #expect(result.output.contains("echo version 1.0.0, ABI ok"))
    }

    @Test func anUnknownKeyIsNamed() throws {
        let result = try forklift("check", config: poolConfig(listen: "{dir}/www.sock") + "\nmax_childs = 3\n")
        #expect(result.status != 0)
        #expect(result.output.contains("10-test.toml: pool.www.plugin.behaviors.max_childs: unknown key"), "\(result.output)")
    }

    @Test func aMissingPluginFileIsNamed() throws {
        let result = try forklift("check", config: pluginConfig(path: "{dir}/libMissing.so"))
        #expect(result.status != 0)
        #expect(result.output.contains("libMissing.so): cannot open the file: No such file or directory"), "\(result.output)")
    }

    @Test func aSharedObjectWithoutTheEntrySymbolIsNotAPlugin() throws {
        let result = try forklift("check", config: pluginConfig(path: "{build}/libForkliftTestNotAPlugin.so"))
        #expect(result.status != 0)
        #expect(result.output.contains("is not a Forklift plugin: it does not export forklift_plugin_entry"), "\(result.output)")
    }

    @Test func aTextFileIsNotAPlugin() throws {
        let result = try forklift("check", config: pluginConfig(path: "{dir}/notes.txt"), files: ["notes.txt": "hello\n"])
        #expect(result.status != 0)
        #expect(result.output.contains("notes.txt): is not a Forklift plugin: not a shared object"), "\(result.output)")
    }

    @Test func versionIsPrinted() throws {
        let result = try Command.run(ForkliftServer.binary, ["--version"])
        #expect(result.status == 0)
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
    }
}

@Suite struct RefusingToStartTests {
    @Test func aBrokenConfigurationStopsRunWithTheReason() throws {
        let result = try forklift("run", config: poolConfig(listen: "{dir}/www.sock").replacingOccurrences(of: "max_children = 2", with: "max_children = -2"))
        #expect(result.status != 0)
        #expect(result.output.contains("pool.www.max_children: expected an integer between 1 and 10000, got -2"), "\(result.output)")
    }

    @Test func aFailingPreloadStopsRunWithTheReason() throws {
        let result = try forklift("run", config: pluginConfig(path: "{build}/libForkliftTestBehaviors.so", settings: "settings = { fail_preload = true }"))
        #expect(result.status == 1)
        #expect(result.output.contains("forklift refuses to start: plugin p (") , "\(result.output)")
        #expect(result.output.contains("preload failed: preload failed on purpose (fail_preload = true)"), "\(result.output)")
    }

    @Test func aPluginThatCannotLoadStopsRun() throws {
        let result = try forklift("run", config: pluginConfig(path: "{build}/libForkliftTestNotAPlugin.so"))
        #expect(result.status == 1)
        #expect(result.output.contains("does not export forklift_plugin_entry"), "\(result.output)")
    }

    @Test func aSocketInUseIsReported() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock"))
        defer { server.shutdown() }
        let config = poolConfig(listen: server.directory + "/www.sock").replacingOccurrences(of: "{dir}/forklift.pid", with: "{dir}/other.pid")
        let result = try forklift("run", config: config)
        #expect(result.status == 1)
        #expect(result.output.contains("another process is already listening there"), "\(result.output)")
    }
}
