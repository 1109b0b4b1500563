import ForkliftConfig
import ForkliftSystem
import Glibc
import Synchronization

/// Where log lines go: standard error, or a file opened for appending. Shared by every
/// process (children inherit the descriptor); each line is one write(), so lines from
/// different processes do not interleave.
public enum LogDestination {
    struct State {
        var fd: Int32 = 2
        var path: String?
        var level: LogLevel = .notice
        var format: LogFormat = .text
    }

    static let state = Mutex(State())

    /// Log to `path` (created if missing), or to standard error when nil.
    public static func open(path: String?) throws {
        guard let path else {
            state.withLock { $0.fd = 2; $0.path = nil }
            return
        }
        let fd = try retryingSyscall("open(\(path))") { Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640) }
        state.withLock { state in
            if state.fd > 2 {
                // Keep the descriptor's number: a worker's crash reporter (faults.c) holds it,
                // and a closed number would soon be a client's connection.
                dup2(fd, state.fd)
                closeDescriptor(fd)
            } else {
                state.fd = fd
            }
            state.path = path
        }
    }

    /// In a forked child about to point its standard error elsewhere: if log lines go to
    /// standard error, they keep going where it points now, through a copy of it.
    public static func moveOffStandardError() {
        state.withLock { state in
            guard state.fd == 2 else { return }
            let copy = fcntl(2, F_DUPFD_CLOEXEC, 3)
            if copy >= 0 { state.fd = copy }
        }
    }

    /// The descriptor log lines go to (children must keep it open).
    public static var fileDescriptor: Int32 { state.withLock { $0.fd } }

    /// Reopen the log file (after logrotate moved it away). Standard error is left as it is.
    public static func reopen() throws {
        guard let path = state.withLock({ $0.path }) else { return }
        try open(path: path)
    }

    public static var level: LogLevel {
        get { state.withLock { $0.level } }
        set { state.withLock { $0.level = newValue } }
    }

    /// `log_format`: text lines, or one JSON object per line.
    public static var format: LogFormat {
        get { state.withLock { $0.format } }
        set { state.withLock { $0.format = newValue } }
    }

    static func write(_ line: String) {
        let fd = state.withLock { $0.fd }
        try? writeAll(fd, line)
    }
}

