import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `forklift run` in a temporary directory, for one test.
///
/// The configuration text may use `{dir}` (the temporary directory) and `{build}` (where
/// `swift build` put the binary and the plugins).
public final class ForkliftServer: @unchecked Sendable {
    public let directory: String
    public let process: Process
    public let logPath: String

    /// The package's top directory.
    public static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// `.build/debug` of this package, or `FORKLIFT_BUILD_DIR`.
    public static var buildDirectory: String {
        if let override = ProcessInfo.processInfo.environment["FORKLIFT_BUILD_DIR"] { return override }
        return packageRoot + "/.build/debug"
    }

    public static var binary: String { buildDirectory + "/forklift" }

    /// Writes the configuration and starts the server; waits for "forklift is ready" unless
    /// `waitUntilReady` is false.
    /// `executable` may name a copy of the binary inside the temporary directory (`{dir}`);
    /// `launcher` is a command that runs it (its path and arguments, `{build}` expanded);
    /// `runArguments` come after `run --conf DIR`; `environment` is added to the test's own
    /// (`{dir}` expanded: NOTIFY_SOCKET in the temporary directory).
    public init(config: String, waitUntilReady: Bool = true, executable: String = ForkliftServer.binary,
                launcher: [String] = [], runArguments: [String] = [], allowRoot: Bool = true, environment: [String: String] = [:],
                prepare: (String) throws -> Void = { _ in }) throws {
        directory = try TemporaryDirectory.make()
        try prepare(directory)
        try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
        try Self.expand(config, directory: directory).write(toFile: directory + "/conf.d/00-test.toml", atomically: true, encoding: .utf8)
        logPath = directory + "/forklift.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        let command = (launcher + [executable]).map { Self.expand($0, directory: directory) }
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = command.dropFirst() + ["run", "--conf", directory + "/conf.d"] + Self.rootArguments(allowRoot: allowRoot) + runArguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment.mapValues { Self.expand($0, directory: directory) }) { $1 }
        }
        let log = FileHandle(forWritingAtPath: logPath)!
        process.standardOutput = log
        process.standardError = log
        // A launcher (gdb) gets no signal blocked, whatever thread the test runs on.
        try FrontEnd.withSignalsUnblocked { try process.run() }
        if waitUntilReady {
            try waitForLog("forklift is ready", timeout: 60)
        }
    }

    /// Tests run as root in CI, and their pools name no user: forklift refuses that without
    /// this flag (PHP-FPM's -R). A test of the refusal itself passes `allowRoot: false`.
    public static func rootArguments(allowRoot: Bool = true) -> [String] {
        allowRoot && geteuid() == 0 ? ["--allow-to-run-as-root"] : []
    }

    public static func expand(_ text: String, directory: String) -> String {
        text.replacingOccurrences(of: "{dir}", with: directory).replacingOccurrences(of: "{build}", with: buildDirectory)
    }

    public var pid: pid_t { process.processIdentifier }

    public var configurationDirectory: String { directory + "/conf.d" }

    /// Replaces the configuration (for a reload).
    public func writeConfig(_ text: String) throws {
        try Self.expand(text, directory: directory).write(toFile: configurationDirectory + "/00-test.toml", atomically: true, encoding: .utf8)
    }

    /// Runs `forklift reload` against this server and returns what it printed.
    public func reload() throws -> Command.Result {
        try Command.run(Self.binary, ["reload", "--conf", configurationDirectory])
    }

    /// Installs `source` as `name` in the temporary directory the way a deploy should:
    /// copy next to it, then rename() over.
    public func install(_ source: String, as name: String) throws {
        let target = directory + "/" + name
        let temporary = target + ".new"
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.copyItem(atPath: source, toPath: temporary)
        guard rename(temporary, target) == 0 else { throw FastCGIError("rename to \(target) failed") }
    }

    /// Generation of each host pid, from the master's "started host pid P for pool X gen N" lines.
    public func hostGenerations() -> [pid_t: Int] {
        var result: [pid_t: Int] = [:]
        for line in log.components(separatedBy: "\n") where line.contains("started host pid ") {
            let words = line.components(separatedBy: " ")
            if let at = words.firstIndex(of: "pid"), at + 1 < words.count, let pid = pid_t(words[at + 1]),
               let gen = words.last.flatMap({ Int($0) }) {
                result[pid] = gen
            }
        }
        return result
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the log (or the file `path`, for a configured `error_log`) contains `text`;
    /// fails early if the server exited.
    public func waitForLog(_ text: String, in path: String? = nil, timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var log: String { path.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" } ?? self.log }
        while Date() < deadline {
            if log.contains(text) { return }
            if !process.isRunning {
                if log.contains(text) { return }
                throw FastCGIError("forklift exited (status \(process.terminationStatus)) before logging \"\(text)\"; log:\n\(log)")
            }
            usleep(20_000)
        }
        throw FastCGIError("timed out waiting for \"\(text)\" in the log:\n\(log)")
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    public static func eventually(timeout: Double = 15, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// The port a TCP pool listens on, as the master logged it (for `listen = "127.0.0.1:0"`).
    public func tcpPort(pool: String) -> UInt16? {
        let marker = "pool \(pool) listening on "
        guard let line = log.components(separatedBy: "\n").first(where: { $0.contains(marker) }),
              let address = line.components(separatedBy: marker).last,
              let colon = address.lastIndex(of: ":") else { return nil }
        return UInt16(address[address.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }

    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits for the master to exit; returns its status, or nil on timeout.
    public func waitForExit(timeout: Double = 30) -> Int32? {
        guard Self.eventually(timeout: timeout, { !process.isRunning }) else { return nil }
        return process.terminationStatus
    }

    /// Every live process below the master (hosts and workers): pid → title.
    public func descendants() -> [pid_t: String] {
        ProcessTable.descendants(of: pid)
    }

    public func workerPIDs(pool: String = "www") -> Set<pid_t> {
        Set(descendants().filter { $0.value.hasPrefix("forklift: worker pool=\(pool) ") }.keys)
    }

    /// Stops the server if a test left it running, and removes the temporary directory.
    public func shutdown() {
        let leftovers = descendants().keys
        if process.isRunning {
            signal(SIGTERM)
            if waitForExit(timeout: 10) == nil { signal(SIGKILL) }
        }
        for pid in leftovers { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { shutdown() }
}

public enum TemporaryDirectory {
    public static func make() throws -> String {
        var template = Array("/tmp/forklift-test-XXXXXX".utf8CString)
        guard let result = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FastCGIError("mkdtemp failed")
        }
        return String(cString: result)
    }
}

/// Reads /proc to find a process's descendants and their titles.
public enum ProcessTable {
    public static func descendants(of root: pid_t) -> [pid_t: String] {
        var parents: [pid_t: pid_t] = [:]
        var titles: [pid_t: String] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 2, fields[0] != "Z", let parent = pid_t(fields[1]) else { continue }
            parents[pid] = parent
            titles[pid] = title(of: pid)
        }
        var result: [pid_t: String] = [:]
        var frontier = [root]
        while let next = frontier.popLast() {
            for (pid, parent) in parents where parent == next && result[pid] == nil {
                result[pid] = titles[pid]
                frontier.append(pid)
            }
        }
        return result
    }

    /// What `ps` shows for `pid` (its argv area).
    public static func title(of pid: pid_t) -> String? {
        guard let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return nil }
        return String(decoding: cmdline.split(separator: 0).first ?? Data(), as: UTF8.self)
    }

    /// User plus system CPU time of `pid`, in clock ticks (usually 1/100 s).
    public static func cpuTicks(of pid: pid_t) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    /// The thread ids of `pid`.
    public static func threads(of pid: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).compactMap { pid_t($0) }
    }

    /// The scheduling policy of `pid` (SCHED_OTHER 0, SCHED_IDLE 5), nil if it is gone.
    public static func schedulingPolicy(of pid: pid_t) -> Int32? {
        let policy = sched_getscheduler(pid)
        return policy < 0 ? nil : policy
    }

    /// Every policy `pid` takes over `seconds` (sampled every 5 ms), until it is gone.
    public static func schedulingPolicies(of pid: pid_t, over seconds: Double) -> Set<Int32> {
        var seen: Set<Int32> = []
        let end = Date().addingTimeInterval(seconds)
        while Date() < end, let policy = schedulingPolicy(of: pid) {
            seen.insert(policy)
            usleep(5_000)
        }
        return seen
    }

    /// Is `pid` alive and not a zombie?
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }
}

/// Runs a command to completion, capturing its output.
public enum Command {
    public struct Result: Sendable {
        public let status: Int32
        /// Standard output and error together, or standard output alone with `errorsApart`.
        public let output: String
        /// Standard error, with `errorsApart`.
        public let errors: String

        public init(status: Int32, output: String, errors: String = "") {
            self.status = status
            self.output = output
            self.errors = errors
        }
    }

    /// `input` is the file standard input reads (else none).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           input: String? = nil, errorsApart: Bool = false) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        // Output goes to a file, not a pipe: a process spawned meanwhile by a parallel test
        // (a forklift that lives on) could inherit the pipe's write end and withhold EOF.
        let directory = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func file(_ name: String) throws -> (path: String, handle: FileHandle) {
            let path = directory + "/" + name
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return (path, try FileHandle(forWritingTo: URL(fileURLWithPath: path)))
        }
        let output = try file("output")
        let errors = errorsApart ? try file("errors") : output
        process.standardOutput = output.handle
        process.standardError = errors.handle
        process.standardInput = try input.map { try FileHandle(forReadingFrom: URL(fileURLWithPath: $0)) } ?? FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try output.handle.close()
        if errorsApart { try errors.handle.close() }
        func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return Result(status: process.terminationStatus, output: text(output.path), errors: errorsApart ? text(errors.path) : "")
    }

    /// The first of `names` found on PATH (or in /usr/sbin), if any.
    public static func find(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
