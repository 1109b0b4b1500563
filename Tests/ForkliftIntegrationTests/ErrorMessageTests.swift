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

    /// Runs `body` on a temporary directory holding `config` as conf.d/10-test.toml and `files`.
    static func withConfiguration<T>(_ config: String, files: [String: String] = [:], prepare: (String) throws -> Void = { _ in },
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

    /// `forklift check` on the row's configuration: (its directory, gone by now, and the result).
    static func check(_ row: Row, prepare: (String) throws -> Void = { _ in }) throws -> (String, Command.Result) {
        try withConfiguration(row.config, files: row.files, prepare: prepare) { directory in
            (directory, try Command.run(ForkliftServer.binary, ["check", "--conf", directory + "/conf.d"]))
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
}
