import Glibc

/// A signal by its Swift name, as swift-service-lifecycle spells them.
public struct UnixSignal: Hashable, CustomStringConvertible, Sendable {
    public let rawValue: Int32
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    public static let hup = UnixSignal(SIGHUP)
    public static let int = UnixSignal(SIGINT)
    public static let quit = UnixSignal(SIGQUIT)
    public static let term = UnixSignal(SIGTERM)
    public static let kill = UnixSignal(SIGKILL)
    public static let usr1 = UnixSignal(SIGUSR1)
    public static let usr2 = UnixSignal(SIGUSR2)
    public static let chld = UnixSignal(SIGCHLD)
    public static let pipe = UnixSignal(SIGPIPE)
    /// Raise (TTIN) or lower (TTOU) a pool's worker count by one, as gunicorn does.
    public static let ttin = UnixSignal(SIGTTIN)
    public static let ttou = UnixSignal(SIGTTOU)
    /// Write a full state dump to the log. SIGPWR is Linux's synonym for SIGINFO, the BSD
    /// "status request" signal (`^T`), and is free in every peer (USR1 and USR2 are taken).
    public static let dump = UnixSignal(SIGPWR)

    public var description: String {
        switch rawValue {
        case SIGHUP: "SIGHUP"
        case SIGINT: "SIGINT"
        case SIGQUIT: "SIGQUIT"
        case SIGTERM: "SIGTERM"
        case SIGKILL: "SIGKILL"
        case SIGUSR1: "SIGUSR1"
        case SIGUSR2: "SIGUSR2"
        case SIGCHLD: "SIGCHLD"
        case SIGPIPE: "SIGPIPE"
        case SIGSEGV: "SIGSEGV"
        case SIGBUS: "SIGBUS"
        case SIGABRT: "SIGABRT"
        case SIGILL: "SIGILL"
        case SIGFPE: "SIGFPE"
        case SIGTRAP: "SIGTRAP"
        case SIGALRM: "SIGALRM"
        case SIGTTIN: "SIGTTIN"
        case SIGTTOU: "SIGTTOU"
        case SIGPWR: "SIGPWR"
        default: "signal \(rawValue)"
        }
    }
}
