import Glibc

/// What systemd tells a `Type=notify` service through its environment: where to send its
/// notifications (`NOTIFY_SOCKET`) and how often to prove it is alive (`WATCHDOG_USEC`,
/// for `WATCHDOG_PID` when set). Parsed from a plain dictionary so that the rules are
/// testable without an environment.
public struct SystemdEnvironment: Equatable, Sendable {
    /// The variables that concern systemd's supervision: children must not see them (a host
    /// or worker that talked to systemd would be refused with NotifyAccess=main, or confuse it
    /// with NotifyAccess=all).
    public static let variables = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]

    /// A unix datagram socket path, or an abstract name starting with "@".
    public var notifySocket: String
    /// WATCHDOG_USEC in seconds, when the watchdog is meant for this process.
    public var watchdogSeconds: Double?

    public init(notifySocket: String, watchdogSeconds: Double? = nil) {
        self.notifySocket = notifySocket
        self.watchdogSeconds = watchdogSeconds
    }

    /// nil when NOTIFY_SOCKET is unset or empty: no service manager listens. The watchdog is
    /// ours only if WATCHDOG_PID is unset or names `pid` (sd_watchdog_enabled's rule).
    public init?(_ environment: [String: String], pid: pid_t) {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty else { return nil }
        notifySocket = socket
        if let usec = environment["WATCHDOG_USEC"].flatMap({ UInt64($0) }), usec > 0,
           environment["WATCHDOG_PID"].map({ pid_t($0) == pid }) ?? true {
            watchdogSeconds = Double(usec) / 1e6
        }
    }

    /// This process's variables (nil without NOTIFY_SOCKET).
    public static func current() -> SystemdEnvironment? {
        var values: [String: String] = [:]
        for name in variables { if let value = getenv(name) { values[name] = String(cString: value) } }
        return SystemdEnvironment(values, pid: getpid())
    }

    /// Removes the variables from this process's environment, so that no child inherits them.
    public static func removeFromEnvironment() {
        for name in variables { unsetenv(name) }
    }

    /// The variables a process `pid` started from this one (`forklift upgrade`'s new master)
    /// needs to take over: the watchdog is then its own.
    public func variables(for pid: pid_t) -> [(String, String)] {
        var result = [("NOTIFY_SOCKET", notifySocket)]
        if let watchdogSeconds {
            result.append(("WATCHDOG_USEC", String(UInt64((watchdogSeconds * 1e6).rounded()))))
            result.append(("WATCHDOG_PID", String(pid)))
        }
        return result
    }
}
