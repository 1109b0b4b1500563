import Foundation
import ForkliftTestSupport
import Testing

/// Runs `forklift check` (or another subcommand) on a configuration.
func forklift(_ subcommand: String, config: String, files: [String: String] = [:]) throws -> Command.Result {
    try withConfiguration(config, files: files) { directory in
        try Command.run(ForkliftServer.binary, [subcommand, "--conf", directory + "/conf.d"] + (subcommand == "run" || subcommand == "check" ? ForkliftServer.rootArguments() : []))
    }
}

/// Runs `body` on a temporary directory holding `config` as conf.d/10-test.toml and `files`
/// (`prepare` may add more), removed afterwards.
func withConfiguration<T>(_ config: String, files: [String: String] = [:], prepare: (String) throws -> Void = { _ in },
                          _ body: (String) throws -> T) throws -> T {
    let directory = try TemporaryDirectory.make()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
    try ForkliftServer.expand(config, directory: directory).write(toFile: directory + "/conf.d/10-test.toml", atomically: true, encoding: .utf8)
    for (name, contents) in files {
        try contents.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }
    try prepare(directory)
    return try body(directory)
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

/// Bad numbers through the real commands (ConfigurationNumbersTests has the whole table):
/// `forklift check` refuses each naming its key, and so does a reload, while the running
/// generation serves on; a good reload afterwards still works.
@Suite struct BadNumberTests {
    static let cases: [(global: String, pool: String, plugin: String, key: String)] = [
        ("background_loading = inf", "", "", "global.background_loading"),
        ("reload_timeout = nan", "", "", "global.reload_timeout"),
        ("emergency_restart_interval = \"9999999999999999999999h\"", "", "", "global.emergency_restart_interval"),
        ("", "request_read_timeout = \"1e400s\"", "", "pool.www.request_read_timeout"),
        ("", "keepalive_timeout = -1", "", "pool.www.keepalive_timeout"),
        ("", "max_body_size = 9223372036854775807", "", "pool.www.max_body_size"),
        ("", "max_params_size = \"inf\"", "", "pool.www.max_params_size"),
        ("", "max_requests = 1e300", "", "pool.www.max_requests"),
        ("", "", "request_terminate_timeout = \"-5s\"", "pool.www.plugin.behaviors.request_terminate_timeout"),
    ]

    static func config(_ bad: (global: String, pool: String, plugin: String, key: String)) -> String {
        sizedPool("max_children = 1\n" + bad.pool, global: bad.global) + "\n" + bad.plugin + "\n"
    }

    @Test func checkAndReloadRefuseEachAndTheMasterServesOn() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        for bad in Self.cases {
            let check = try forklift("check", config: Self.config(bad))
            #expect(check.status != 0 && check.output.contains(bad.key), "check: \(check.output)")
            try server.writeConfig(Self.config(bad))
            let reload = try server.reload()
            #expect(reload.status != 0 && reload.output.contains(bad.key), "reload: \(reload.output)")
            #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
        }
        #expect(server.process.isRunning)
        #expect(Set(server.hostGenerations().values) == [1], "no generation was started for a bad configuration")
        try server.writeConfig(sizedPool("max_children = 1"))
        let good = try server.reload()
        #expect(good.status == 0 && good.output.contains("pool www gen 2"), "\(good.output)")
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
    }
}
