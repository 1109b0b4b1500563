import CForkliftSys
import Glibc

/// How a child ended, as waitpid reports it.
public enum ExitStatus: Equatable, CustomStringConvertible, Sendable {
    case exited(Int32)
    case signaled(UnixSignal, coreDumped: Bool)

    init(waitStatus status: Int32) {
        if forklift_wifsignaled(status) != 0 {
            self = .signaled(UnixSignal(forklift_wtermsig(status)), coreDumped: forklift_wcoredump(status) != 0)
        } else {
            self = .exited(forklift_wexitstatus(status))
        }
    }

    public var isSuccess: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal, let core): "was killed by \(signal)" + (core ? " (core dumped)" : "")
        }
    }
}

public enum ChildProcess {
    /// Forks a child that runs `body` and never returns into the caller's stack.
    ///
    /// Signals are blocked across fork(): a signal delivered between fork() and the child's
    /// own setup would otherwise run the parent's handler and write into the parent's
    /// self-pipe, or (reset to default) kill the child. In the child, `prepareChild` runs to
    /// reset what the parent installed, then `body` runs with every signal still blocked: it
    /// unblocks them (`unblockAllSignals`) once its own handlers are in place. Nothing is lost
    /// meanwhile; a blocked signal stays pending.
    ///
    /// `newProcessGroup` makes the child lead its own process group, set on both sides of the
    /// fork so that the parent can signal the group the moment spawn returns.
    public static func spawn(newProcessGroup: Bool = false, prepareChild: () -> Void = {}, _ body: () -> Never) throws -> pid_t {
        // Unflushed stdio would be written twice, once by each process.
        fflush(nil)
        var oldMask = [UInt8](repeating: 0, count: forklift_sigset_size())
        try retryingSyscall("sigprocmask") { forklift_signals_block_all(&oldMask, oldMask.count) }
        let pid = forklift_fork()
        if pid == 0 {
            if newProcessGroup { setpgid(0, 0) }
            prepareChild()
            body()
        }
        let forkErrno = errno
        if pid > 0 && newProcessGroup { setpgid(pid, pid) }
        _ = forklift_signals_set_mask(oldMask, oldMask.count)
        if pid < 0 { throw SystemError("fork", errno: forkErrno) }
        return pid
    }

    /// Every child that has ended since the last call (waitpid with WNOHANG until none).
    public static func reap() -> [(pid: pid_t, status: ExitStatus)] {
        var reaped: [(pid_t, ExitStatus)] = []
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid > 0 {
                reaped.append((pid, ExitStatus(waitStatus: status)))
                continue
            }
            if pid < 0 && errno == EINTR { continue }
            return reaped // 0: children remain but none ended; ECHILD: no children at all
        }
    }

    /// What became of a signal.
    public enum Delivery: Equatable, Sendable {
        case delivered
        /// The process is already gone (ESRCH): the ordinary race between deciding to signal
        /// a child and that child exiting.
        case gone
        /// It runs as a user this process may not signal (EPERM): a plugin's child that
        /// changed users, say. An answer like any other, for the caller to log.
        case notPermitted
    }

    /// Sends `signal` to `pid`.
    @discardableResult
    public static func send(_ signal: UnixSignal, to pid: pid_t) -> Delivery {
        deliver { kill(pid, signal.rawValue) }
    }

    /// Sends `signal` to every process of the group `pgid` (not permitted: to none of them).
    @discardableResult
    public static func send(_ signal: UnixSignal, toGroup pgid: pid_t) -> Delivery {
        deliver { kill(-pgid, signal.rawValue) }
    }

    private static func deliver(_ call: () -> Int32) -> Delivery {
        if call() == 0 { return .delivered }
        switch errno {
        case ESRCH: return .gone
        case EPERM: return .notPermitted
        // EINVAL, the only other answer, is for a signal number no UnixSignal has.
        default: preconditionFailure("kill: \(SystemError("kill").description)")
        }
    }

    /// Is `pid` alive (or a zombie not yet reaped)?
    public static func exists(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// Replaces this (forked) process with `path`; exits 127 if that fails.
    public static func exec(_ path: String, _ arguments: [String]) -> Never {
        var cArguments = arguments.map { strdup($0) } + [nil]
        execv(path, &cArguments)
        let message = "forklift: exec \(path): \(SystemError("execv").description)\n"
        try? writeAll(2, message)
        _exit(127)
    }

    /// Makes this process the child subreaper of its descendants: a process whose parent dies
    /// becomes this one's child (and is reaped here) instead of init's.
    public static func becomeSubreaper() {
        _ = forklift_set_child_subreaper()
    }

    /// This process's children now (of its main thread: the host has no other), from
    /// /proc/self/task/TID/children; empty where the kernel lacks that file.
    public static func children() -> [pid_t] {
        let path = "/proc/self/task/\(getpid())/children"
        guard let file = fopen(path, "r") else { return [] }
        defer { fclose(file) }
        var text = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            text += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { pid_t($0) }
    }

    /// Leaves without running atexit handlers or flushing the parent's inherited buffers twice.
    public static func exitImmediately(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }

    /// Ask the kernel to send `signal` when the parent exits (it fires when the *thread* that
    /// forked us ends; every forking process here is single-threaded, so that is the process).
    public static func setParentDeathSignal(_ signal: UnixSignal) {
        _ = forklift_set_parent_death_signal(signal.rawValue)
    }
}
