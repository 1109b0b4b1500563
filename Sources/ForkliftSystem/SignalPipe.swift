import CForkliftSys
import Glibc

/// The self-pipe: a C handler writes each caught signal's number into a non-blocking pipe,
/// and the process's loop `poll()`s the read end. Nothing else runs in signal context.
///
/// One per process. A forked child must call `reset()` (in the child) and make its own.
public final class SignalPipe {
    private let pipe: Pipe
    private var caught: [UnixSignal] = []

    /// The descriptor to poll for readability.
    public var fileDescriptor: Int32 { pipe.readEnd }

    /// Starts catching `signals`. `restartSyscalls` sets SA_RESTART (workers use it so that a
    /// signal never breaks a read or write inside libfcgi in the middle of a request).
    public init(catching signals: [UnixSignal], restartSyscalls: Bool = false) throws {
        pipe = try Pipe(nonBlocking: true)
        forklift_signal_pipe_set(pipe.writeEnd)
        for signal in signals {
            try retryingSyscall("sigaction(\(signal))") {
                forklift_signal_catch(signal.rawValue, restartSyscalls ? 1 : 0)
            }
        }
        caught = signals
        // Whoever started us may have had these blocked (posix_spawn passes the spawning
        // thread's mask on; Foundation's Process does); a blocked TERM would never arrive.
        try Self.mask(signals, blocked: false)
    }

    /// Blocks or unblocks `signals`. A blocked signal stays pending until unblocked, so
    /// nothing is lost: the handler runs (and writes to the pipe) at the unblock.
    public static func mask(_ signals: [UnixSignal], blocked: Bool) throws {
        let numbers = signals.map(\.rawValue)
        try retryingSyscall("sigprocmask") { forklift_signals_mask(numbers, Int32(numbers.count), blocked ? 1 : 0) }
    }

    /// The signals that arrived since the last call, in order (duplicates kept).
    public func drain() -> [UnixSignal] {
        var signals: [UnixSignal] = []
        while let bytes = try? readAvailable(pipe.readEnd, limit: 256), !bytes.isEmpty {
            signals += bytes.map { UnixSignal(Int32($0)) }
        }
        return signals
    }

    /// In a forked child: restore default dispositions and close the inherited pipe, so the
    /// child's signals never land in the parent's pipe.
    public func reset() {
        forklift_signal_pipe_set(-1)
        for signal in caught { _ = forklift_signal_default(signal.rawValue) }
        pipe.close()
    }
}

/// Start from a clean signal mask: a parent may have started us with signals blocked
/// (Foundation's Process does), and every child would inherit that.
public func unblockAllSignals() {
    _ = forklift_signals_unblock_all()
}

/// Ignore SIGPIPE: a client that hangs up must cost a failed write, not the process.
public func ignoreBrokenPipe() {
    _ = forklift_signal_ignore(SIGPIPE)
}

/// A worker's signals, read from a signalfd: blocked for good, so they never run a handler in
/// the middle of a request or interrupt a plugin's system call, and serving a request needs no
/// mask change (two sigprocmask calls per request before). The loop polls `fileDescriptor`
/// as it polled the self-pipe. Threads started afterwards inherit the mask, so a plugin's
/// threads never receive them either.
public final class SignalDescriptor {
    public let fileDescriptor: Int32
    public let signals: [UnixSignal]

    public init(catching signals: [UnixSignal]) throws {
        // A handler stays installed (a no-op while blocked): left at its default, libfcgi's
        // FCGX_Init would take the signal over, and a default TERM unblocked by mistake kills.
        for signal in signals {
            try retryingSyscall("sigaction(\(signal))") { forklift_signal_catch(signal.rawValue, 1) }
        }
        let numbers = signals.map(\.rawValue)
        fileDescriptor = try retryingSyscall("signalfd") { forklift_signalfd_open(numbers, Int32(numbers.count)) }
        self.signals = signals
    }

    /// Once every handler is in place: this thread blocks these signals (and `also`) and no
    /// other. (A forked worker starts with every signal blocked.)
    public func unblockAllOthers(alsoBlocking also: [UnixSignal] = []) throws {
        let numbers = (signals + also).map(\.rawValue)
        try retryingSyscall("sigprocmask") { forklift_signals_block_only(numbers, Int32(numbers.count)) }
    }

    /// The signals that arrived since the last call, in order (one per kind while pending).
    public func drain() -> [UnixSignal] {
        var signals: [UnixSignal] = []
        while true {
            let number = forklift_signalfd_read(fileDescriptor)
            if number < 0 { return signals }
            signals.append(UnixSignal(number))
        }
    }
}
