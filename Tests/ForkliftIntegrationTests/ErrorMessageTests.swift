import Foundation
import ForkliftTestSupport
import Testing

/// Broken configurations and plugin files, through the real binary: each row is the input and
/// what the message must say (the file, the key or symbol, what was found and expected, the
/// fix). The pure parsing has its own table in ConfigurationErrorMessageTests.
@Suite struct ErrorMessageTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let name: String
        let config: String
        var files: [String: String] = [:]
        let contains: [String]
        /// forklift check's exit status.
        var status: Int32 = 1
        var testDescription: String { name }
    }

    // MARK: configuration, through forklift check

    static let configurations: [Row] = [
        Row(name: "a misspelt key, reported before what its absence causes",
            config: pluginConfig(path: "{build}/libHello.so").replacingOccurrences(of: "max_children", with: "max_chidren"),
            contains: ["10-test.toml: pool.www.max_chidren: unknown key; did you mean max_children?"]),
        Row(name: "listen next to the pid file, on the control socket it implies",
            config: pluginConfig(path: "{build}/libHello.so").replacingOccurrences(of: "{dir}/www.sock", with: "{dir}/forklift.sock"),
            contains: ["10-test.toml: pool.www.listen: {dir}/forklift.sock is already the control socket (global.pid's path with .sock, as control_socket is not set); listen elsewhere, or set global.control_socket"]),
        Row(name: "a pid file in a directory that does not exist",
            config: pluginConfig(path: "{build}/libHello.so").replacingOccurrences(of: "{dir}/forklift.pid", with: "/nonexistent/dir/x.pid"),
            contains: ["pid file /nonexistent/dir/x.pid: cannot create: No such file or directory",
                       "control socket /nonexistent/dir/x.sock: cannot create: No such file or directory"]),
        Row(name: "a socket in a directory that does not exist",
            config: pluginConfig(path: "{build}/libHello.so").replacingOccurrences(of: "{dir}/www.sock", with: "{dir}/missing/www.sock"),
            contains: ["pool www: listen socket {dir}/missing/www.sock: cannot create: No such file or directory"]),
    ]

    // MARK: plugin files, through forklift check

    static let pluginFiles: [Row] = [
        Row(name: "a missing file", config: pluginConfig(path: "{dir}/libMissing.so"),
            contains: ["plugin p ({dir}/libMissing.so): cannot open the file: No such file or directory",
                       "expected the plugin's shared object there: build the plugin, or correct pool.www.plugin.p.path"]),
        Row(name: "a text file", config: pluginConfig(path: "{dir}/notes.txt"), files: ["notes.txt": "hello\n"],
            contains: ["plugin p ({dir}/notes.txt): is not a Forklift plugin: not a shared object: expected an ELF header, found a text file",
                       "SwiftPM: a .library product of type: .dynamic"]),
        Row(name: "an empty file", config: pluginConfig(path: "{dir}/libEmpty.so"), files: ["libEmpty.so": ""],
            contains: ["not a shared object: expected an ELF header, found an empty file (a copy still in progress?)"]),
        Row(name: "a static library", config: pluginConfig(path: "{dir}/libStatic.a"), files: ["libStatic.a": "!<arch>\n/               0           0     0     0       4         `\n"],
            contains: ["({dir}/libStatic.a): is not a Forklift plugin: not a shared object: expected an ELF header, found a static library (ar archive)"]),
        Row(name: "a directory", config: pluginConfig(path: "{build}"),
            contains: ["cannot read the file: Is a directory; pool.www.plugin.p.path must name the shared object itself (libNAME.so), not its directory"]),
        Row(name: "a shared object without the entry symbol", config: pluginConfig(path: "{build}/libForkliftTestNotAPlugin.so"),
            contains: ["libForkliftTestNotAPlugin.so): is not a Forklift plugin: it does not export forklift_plugin_entry; expected the entry function",
                       "@_cdecl(\"forklift_plugin_entry\") public func entry() -> UnsafeRawPointer { export(YourHandler.self) }",
                       "const forklift_plugin *forklift_plugin_entry(void)"]),
        Row(name: "a debug build (a note, not an error)", config: pluginConfig(path: "{build}/libHello.so"),
            contains: ["hello version 1.0.0, ABI ok, route / (a debug build: it does not keep what it preloads shared by the workers; for production, build it with swift build -c release)"],
            status: 0),
    ]

    /// `forklift check` on the row's configuration: (its directory, gone by now, and the result).
    static func check(_ row: Row, prepare: (String) throws -> Void = { _ in }) throws -> (String, Command.Result) {
        try withConfiguration(row.config, files: row.files, prepare: prepare) { directory in
            (directory, try Command.run(ForkliftServer.binary, ["check", "--conf", directory + "/conf.d"] + ForkliftServer.rootArguments()))
        }
    }

    static func expect(_ row: Row, _ directory: String, _ result: Command.Result) {
        #expect(result.status == row.status, "\(result.output)")
        for text in row.contains {
            let expanded = ForkliftServer.expand(text, directory: directory)
            #expect(result.output.contains(expanded), "\(result.output)\nmissing: \(expanded)")
        }
    }

    @Test(arguments: configurations)
    func configurationErrors(row: Row) throws {
        let (directory, result) = try Self.check(row)
        Self.expect(row, directory, result)
        #expect(!result.output.contains("is required"), "the unknown key comes first: \(result.output)")
    }

    @Test(arguments: pluginFiles)
    func pluginFileErrors(row: Row) throws {
        let (directory, result) = try Self.check(row)
        Self.expect(row, directory, result)
    }

    /// Plugins built here for the occasion: (the row, C sources to build as `{dir}/libbuilt.so`).
    static let builtPlugins: [(row: Row, sources: [String])] = {
        let example = (try? cExampleSource()) ?? ""
        let otherToolchain = #"__asm__(".section .comment,\"MS\",@progbits,1\n.asciz \"clang version 1.0.0 (https://github.com/swiftlang/llvm-project.git 0123456789)\"\n.previous");"#
        let config = pluginConfig(path: "{dir}/libbuilt.so")
        return [
            (Row(name: "another plugin ABI", config: config,
                 contains: ["({dir}/libbuilt.so): was built for plugin ABI version 99, but this forklift speaks version 1; rebuild it against this forklift's ForkliftPlugin (a C plugin: against its forklift_plugin.h)"]),
             [example.replacingOccurrences(of: ".abi_version = FORKLIFT_ABI_VERSION,", with: ".abi_version = 99,")]),
            (Row(name: "another Swift toolchain", config: config,
                 contains: ["({dir}/libbuilt.so): was built with a different Swift toolchain: found clang version 1.0.0 (https://github.com/swiftlang/llvm-project.git 0123456789) in its .comment section, expected this forklift's clang version",
                            "rebuild the plugin with the toolchain forklift was built with"]),
             [otherToolchain, example]),
            (Row(name: "an entry returning NULL", config: config,
                 contains: ["({dir}/libbuilt.so): forklift_plugin_entry() returned NULL, expected a pointer to its forklift_plugin"]),
             [example.replacingOccurrences(of: "forklift_plugin_entry(void) { return &plugin; }", with: "forklift_plugin_entry(void) { (void)plugin; return 0; }")]),
            (Row(name: "no handle hook", config: config,
                 contains: ["exports no handle hook; its forklift_plugin must set handle"]),
             [example.replacingOccurrences(of: ".handle = handle,", with: ".handle = 0,")
                + "\nint (*forklift_test_unused)(void *, forklift_request *, forklift_response *, forklift_error *) = handle;\n"]),
        ]
    }()

    @Test(arguments: builtPlugins.map(\.row))
    func builtPluginErrors(row: Row) throws {
        let sources = try #require(Self.builtPlugins.first { $0.row.name == row.name }).sources
        let (directory, result) = try Self.check(row) { directory in _ = try buildCPlugin(sources, in: directory) }
        Self.expect(row, directory, result)
    }

    /// A plugin that needs a library this system lacks: the library named, and the fix for the
    /// ones whose fix is known (libfcgi, a Swift toolchain's runtime).
    @Test(arguments: [
        ("libfcgi.so.99", "the plugin needs libfcgi, which is not installed: apt-get install libfcgi-dev"),
        ("libswiftCore.so.99", "libswiftCore.so.99 is a library of the Swift toolchain the plugin was built with, not found here: rebuild the plugin with this forklift's toolchain"),
        ("libelsewhere.so.1", "plugins load from a private copy, so $ORIGIN in their RUNPATH does not find libraries next to the plugin file"),
    ])
    func missingLibraries(soname: String, fix: String) throws {
        let cc = try #require(Command.find("cc"), "a C compiler is needed")
        let row = Row(name: soname, config: pluginConfig(path: "{dir}/libbuilt.so"),
                      contains: ["({dir}/libbuilt.so): cannot be loaded: \(soname): cannot open shared object file: No such file or directory (\(fix)"])
        let (directory, result) = try Self.check(row) { directory in
            // A library with that soname, linked against, then gone.
            try "int forklift_test_dependency(void) { return 1; }\n".write(toFile: directory + "/dependency.c", atomically: true, encoding: .utf8)
            let library = directory + "/libdependency.so"
            let built = try Command.run(cc, ["-shared", "-fPIC", "-Wl,-soname,\(soname)", directory + "/dependency.c", "-o", library])
            try #require(built.status == 0, "\(built.output)")
            let plugin = try cExampleSource().replacingOccurrences(of: "forklift_plugin_entry(void) { return &plugin; }",
                                                                  with: "forklift_plugin_entry(void) { extern int forklift_test_dependency(void); forklift_test_dependency(); return &plugin; }")
            try plugin.write(toFile: directory + "/plugin.c", atomically: true, encoding: .utf8)
            let linked = try Command.run(cc, ["-shared", "-fPIC", "-I", ForkliftServer.packageRoot + "/Sources/CForkliftABI/include",
                                              directory + "/plugin.c", library, "-o", directory + "/libbuilt.so"])
            try #require(linked.status == 0, "\(linked.output)")
            try FileManager.default.removeItem(atPath: library)
        }
        Self.expect(row, directory, result)
    }

    @Test func aSharedObjectForAnotherMachine() throws {
        // An ELF header: 64-bit, little-endian, a shared object (ET_DYN) for aarch64 (183), on x86_64.
        var header = [UInt8](repeating: 0, count: 64)
        header.replaceSubrange(0..<7, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1])
        header[16] = 3
        #if arch(x86_64)
        header[18] = 183
        let expected = "expected one for x86_64, found one for aarch64; build it on (or for) this machine"
        #else
        header[18] = 62
        let expected = "found one for x86_64; build it on (or for) this machine"
        #endif
        let row = Row(name: "another machine", config: pluginConfig(path: "{dir}/libOther.so"),
                      contains: ["({dir}/libOther.so): is not a Forklift plugin: not a shared object: " + expected])
        let (directory, result) = try Self.check(row) { try Data(header).write(to: URL(fileURLWithPath: $0 + "/libOther.so")) }
        Self.expect(row, directory, result)
    }

    @Test func anExecutable() throws {
        let row = Row(name: "an executable", config: pluginConfig(path: "{dir}/true"),
                      contains: ["({dir}/true): cannot be loaded: cannot dynamically load position-independent executable (it is an executable; build the plugin as a shared object"])
        let (directory, result) = try Self.check(row) { try FileManager.default.copyItem(atPath: "/bin/true", toPath: $0 + "/true") }
        Self.expect(row, directory, result)
    }

    // MARK: what only the running server finds

    @Test func runNamesThePidFile() throws {
        let result = try forklift("run", config: pluginConfig(path: "{build}/libHello.so").replacingOccurrences(of: "{dir}/forklift.pid", with: "/nonexistent/dir/x.pid"))
        #expect(result.status == 1)
        #expect(result.output.contains("cannot start: pid file /nonexistent/dir/x.pid: cannot create: No such file or directory"), "\(result.output)")
    }

    /// The master keeps its control socket until it restarts, whatever the files say now: a
    /// reload that moves the pid file and listens where the control socket was is refused as a
    /// configuration error, not as "another process is already listening there".
    @Test func aReloadOnTheRunningControlSocket() throws {
        let server = try ForkliftServer(config: pluginConfig(path: "{build}/libHello.so"))
        defer { server.shutdown() }
        try server.writeConfig(pluginConfig(path: "{build}/libHello.so")
            .replacingOccurrences(of: "{dir}/forklift.pid", with: "{dir}/moved.pid").replacingOccurrences(of: "{dir}/www.sock", with: "{dir}/forklift.sock"))
        let result = try Command.run(ForkliftServer.binary, ["reload", "--conf", server.configurationDirectory, "--control", server.directory + "/forklift.sock"])
        #expect(result.status != 0)
        #expect(result.output.contains("00-test.toml: pool.www.listen: \(server.directory)/forklift.sock is already the running master's control socket (it keeps it until it restarts); listen elsewhere until forklift is restarted"), "\(result.output)")
        #expect(try FastCGIClient.get(server.www, "/").status == 200, "the running generation serves on")
    }

    @Test func aDebugBuildPreloadingMuchIsToldToBuildForRelease() throws {
        let server = try ForkliftServer(config: pluginConfig(path: "{build}/libForkliftBenchBallast.so", settings: "settings = { preload_mb = 48 }"))
        defer { server.shutdown() }
        #expect(server.log.contains("/libForkliftBenchBallast.so) is a debug build and its preload took "), "\(server.log)")
        #expect(server.log.contains("a debug build does not keep what it preloads shared, every worker may end up with a copy of it (docs/memory.md); build the plugin with swift build -c release"), "\(server.log)")
    }

    // MARK: forklift -t

    /// nginx's and PHP-FPM's spelling: the same output and exit status as `forklift check`.
    @Test(arguments: [false, true])
    func dashTIsCheck(broken: Bool) throws {
        try withConfiguration(pluginConfig(path: broken ? "{dir}/libMissing.so" : "{build}/libHello.so")) { directory in
            let conf = directory + "/conf.d"
            let root = ForkliftServer.rootArguments() // the pool names no user
            let check = try Command.run(ForkliftServer.binary, ["check", "--conf", conf] + root)
            #expect(check.status == (broken ? 1 : 0), "\(check.output)")
            for arguments in [["-t", "--conf", conf], ["--test", "--conf", conf], ["--conf", conf, "-t"], ["--conf=\(conf)", "--test"]] {
                let result = try Command.run(ForkliftServer.binary, arguments + root)
                #expect(result.status == check.status, "\(arguments): \(result.output)")
                #expect(result.output == check.output, "\(arguments)")
            }
        }
    }
}
