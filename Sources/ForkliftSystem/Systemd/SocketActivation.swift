import Glibc

/// systemd's socket activation (sd_listen_fds): the listening sockets a service manager
/// opened for this process, passed as descriptors 3, 4, ... with `LISTEN_FDS` (how many),
/// `LISTEN_PID` (for which process: a child that inherits the variables must not take them)
/// and `LISTEN_FDNAMES` (their `FileDescriptorName=`, colon-separated).
public enum SocketActivation {
    public static let variables = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]
    static let firstDescriptor: Int32 = 3

    /// Where a passed socket is bound.
    public enum BoundAddress: Equatable, Sendable, CustomStringConvertible {
        case unix(path: String)
        /// A numeric host ("127.0.0.1", "::") and a port.
        case inet(host: String, port: UInt16)

        public var description: String {
            switch self {
            case .unix(let path): path
            case .inet(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            }
        }
    }

    public struct Socket: Equatable, Sendable {
        public let fd: Int32
        /// Its `FileDescriptorName=`; nil when systemd gave none (or the default "unknown").
        public let name: String?
        /// nil: not a listening stream socket of a kind Forklift serves (it is closed).
        public let address: BoundAddress?
        /// Why it cannot be used, when `address` is nil.
        public let problem: String?

        public init(fd: Int32, name: String?, address: BoundAddress?, problem: String?) {
            self.fd = fd
            self.name = name
            self.address = address
            self.problem = problem
        }
    }

    /// The descriptors and names the variables pass to `pid`; empty when they are not for it.
    public static func passed(_ environment: [String: String], pid: pid_t) -> [(fd: Int32, name: String?)] {
        guard environment["LISTEN_PID"].flatMap({ pid_t($0) }) == pid,
              let count = environment["LISTEN_FDS"].flatMap({ Int32($0) }), count > 0, count < 4096 else { return [] }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        return (0..<count).map { index in
            let name = Int(index) < names.count ? names[Int(index)] : nil
            return (firstDescriptor + index, name.flatMap { $0.isEmpty || $0 == "unknown" ? nil : $0 })
        }
    }

    /// The sockets passed to this process, each checked and made close-on-exec; the variables
    /// are removed from the environment, so that no host or worker sees them.
    public static func take() -> [Socket] {
        var environment: [String: String] = [:]
        for name in variables {
            if let value = getenv(name) { environment[name] = String(cString: value) }
            unsetenv(name)
        }
        return passed(environment, pid: getpid()).map { fd, name in
            _ = try? setCloseOnExec(fd)
            switch inspect(fd) {
            case .success(let address): return Socket(fd: fd, name: name, address: address, problem: nil)
            case .failure(let problem): return Socket(fd: fd, name: name, address: nil, problem: problem.description)
            }
        }
    }

    private struct Problem: Error, CustomStringConvertible { let description: String }

    /// A listening stream socket's address.
    private static func inspect(_ fd: Int32) -> Result<BoundAddress, Problem> {
        var type: Int32 = 0, listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
            return .failure(Problem(description: "descriptor \(fd) is not a socket"))
        }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard type == Int32(SOCK_STREAM.rawValue), getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening != 0 else {
            return .failure(Problem(description: "descriptor \(fd) is not a listening stream socket (ListenStream= in the socket unit)"))
        }
        if let inet = IPAddress.local(of: fd) {
            return .success(.inet(host: IPAddress.text(inet.bytes) ?? "?", port: inet.port))
        }
        var address = sockaddr_un()
        var size = socklen_t(MemoryLayout<sockaddr_un>.size)
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &size) == 0 } }
        guard named else { return .failure(Problem(description: "descriptor \(fd): getsockname: \(String(cString: strerror(errno)))")) }
        guard Int32(address.sun_family) == AF_UNIX else {
            return .failure(Problem(description: "descriptor \(fd) is a socket of a family Forklift does not serve"))
        }
        let path = withUnsafeBytes(of: address.sun_path) { bytes in String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }
        return path.hasPrefix("/") ? .success(.unix(path: path))
            : .failure(Problem(description: "descriptor \(fd) is an abstract or unnamed unix socket (give ListenStream= a path)"))
    }
}
