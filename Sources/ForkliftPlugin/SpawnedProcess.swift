#if canImport(Glibc)
import Glibc
#endif

/// A program a plugin starts from a worker: a converter it runs per request, a helper it keeps.
///
/// Start it with ``spawn(_:arguments:environment:)``, not with `fork()` or `Foundation.Process`:
/// a worker blocks TERM, INT, QUIT and USR1 while a handler runs (so that a graceful stop never
/// interrupts it), ignores SIGPIPE, and holds the pool's sockets. A process forked from there
/// inherits all of that: it ignores the TERM of a stop, and keeps the listening socket open.
/// `spawn` starts the program with no signal blocked, every signal at its default, and no
/// descriptor but standard input, output and error.
///
/// Whatever a plugin starts is stopped with its worker: when the worker is gone the host, the
/// child subreaper of everything below it, adopts what is left, sends it TERM, and KILL five
/// seconds later; and a stop or a reload's drain never leaves one behind.
///
/// ```swift
/// let converter = try SpawnedProcess.spawn("/usr/bin/convert", arguments: [input, output])
/// guard try converter.wait() == 0 else { throw PluginError("convert failed") }
/// ```
public struct SpawnedProcess: Sendable {
    /// Its process id.
    public let pid: pid_t

    /// The signals a worker blocks or catches, reset for the program.
    static let resetSignals = [SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE, SIGCHLD, SIGALRM]

    /// Starts `executable` (a path: no `PATH` search) with `arguments` (not counting the
    /// program's name, which is `executable`) and `environment` (the worker's when nil).
    /// Throws ``PluginError`` naming the program when it cannot be started.
    public static func spawn(_ executable: String, arguments: [String] = [], environment: [String: String]? = nil) throws -> SpawnedProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in resetSignals { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        // Every descriptor but 0, 1 and 2 is closed in the program: the listening socket, the
        // client's connection, the host's pipes are the worker's alone.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in openDescriptors() where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }

        var argv = ([executable] + arguments).map { strdup($0) } + [nil]
        var envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp ?? [] { free(pointer) }
        }
        var pid: pid_t = 0
        let status: Int32
        if envp != nil {
            status = posix_spawn(&pid, executable, &actions, &attributes, &argv, &envp!)
        } else {
            status = posix_spawn(&pid, executable, &actions, &attributes, &argv, environ)
        }
        guard status == 0 else { throw PluginError("cannot start \(executable): \(String(cString: strerror(status)))") }
        return SpawnedProcess(pid: pid)
    }

    /// Waits for it to end: its exit status, or 128 + the signal that ended it.
    public func wait() throws -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw PluginError("waitpid(\(pid)): \(String(cString: strerror(errno)))") }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Sends it TERM.
    public func terminate() {
        kill(pid, SIGTERM)
    }

    /// This process's descriptors, from /proc/self/fd.
    static func openDescriptors() -> [Int32] {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var result: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name), fd != own { result.append(fd) }
        }
        return result
    }
}
