import CForkliftSys
import Glibc

/// `forklift run --daemonize`: the classic double fork (setsid between the two, so the
/// daemon leads no session and can never get a controlling terminal back), with a pipe from
/// the daemon to the launching process, which exits only once the daemon said how its start
/// went: "ready PID", or "failed REASON" (see `Master.tellLauncher`).
///
/// Call before any thread exists: only the calling thread survives a fork.
public enum Daemon {
    /// What the launching process does with the daemon's word: its exit status and message.
    public static func outcome(of word: String) -> (status: Int32, message: String) {
        let line = word.split(separator: "\n").first.map(String.init) ?? ""
        if line.hasPrefix("ready ") { return (0, "forklift: running in the background as pid \(line.dropFirst(6))") }
        if line.hasPrefix("failed ") { return (1, "forklift: \(line.dropFirst(7))") }
        return (1, "forklift: the daemon exited before it was ready (its error_log, if set, says why)")
    }

    /// The variable that hands the daemon its end of the pipe (a descriptor number).
    public static let readinessVariable = "FORKLIFT_READINESS_FD"

    /// Never returns. The launching process exits with the daemon's outcome; the daemon, a
    /// grandchild in a session of its own with stdio on /dev/null (standard error on
    /// `standardError`, the error_log, when given), execs `executable` afresh with the pipe's
    /// write end named in `readinessVariable`. A fresh image, not a forked copy: the
    /// launcher's state (the Swift runtime's, a lock's owner) is not the master's.
    public static func detach(executable: String, arguments: [String], standardError: Int32?) throws -> Never {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw SystemError("pipe") }
        try setCloseOnExec(ends[0])
        fflush(nil) // or the daemon would write the launcher's buffered output again
        let child = forklift_fork()
        if child < 0 { throw SystemError("fork") }
        if child > 0 {
            closeDescriptor(ends[1])
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {} // the middle process leaves at once
            var word: [UInt8] = []
            while let bytes = try? readAvailable(ends[0]), !bytes.isEmpty { word += bytes }
            let (code, message) = outcome(of: String(decoding: word, as: UTF8.self))
            try? writeAll(code == 0 ? 1 : 2, message + "\n")
            exit(code)
        }
        closeDescriptor(ends[0])
        setsid()
        let daemon = forklift_fork()
        if daemon < 0 {
            try? writeAll(ends[1], "failed cannot fork the daemon: \(SystemError("fork"))\n")
            _exit(1)
        }
        if daemon > 0 { _exit(0) } // the daemon is reparented to init (or the nearest subreaper)
        // As every daemon: no directory of the launcher's kept busy (an unmount would fail).
        // The configuration directory and the binary are absolute paths by now.
        _ = chdir("/")
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            dup2(null, 0)
            dup2(null, 1)
            dup2(standardError ?? null, 2)
            if null > 2 { closeDescriptor(null) }
        }
        // Nothing else of the launcher's: a descriptor its own parent watches for EOF (a
        // supervisor's, a test's) must not stay open for as long as the daemon lives.
        SelfInspection.closeDescriptors(except: [0, 1, 2, ends[1]])
        try? setCloseOnExec(ends[1], false)
        setenv(readinessVariable, String(ends[1]), 1)
        ChildProcess.exec(executable, arguments) // its failure is written to the error_log, and the pipe closes
    }

    /// In the daemon: the pipe's write end, taken out of the environment (no child inherits it).
    public static func readinessDescriptor() -> Int32? {
        guard let value = getenv(readinessVariable).flatMap({ Int32(String(cString: $0)) }) else { return nil }
        unsetenv(readinessVariable)
        try? setCloseOnExec(value)
        return value
    }
}
