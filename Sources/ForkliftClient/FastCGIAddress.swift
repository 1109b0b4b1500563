import Glibc

/// Where a FastCGI server listens: a unix socket path, or TCP host (IPv4, IPv6 or a name)
/// and port.
public enum FastCGIAddress: Equatable, CustomStringConvertible, Sendable {
    case unix(String)
    case tcp(host: String, port: UInt16)

    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    /// As `--connect` and `listen` are written: `host:port`, `[ipv6]:port`, `unix:/path`, or
    /// anything with a `/` (a path). Nil for what is neither.
    public init?(parsing text: String) {
        if text.hasPrefix("unix:") {
            self = .unix(String(text.dropFirst(5)))
        } else if text.contains("/") || text.hasSuffix(".sock") {
            self = .unix(text)
        } else if text.hasPrefix("["), let close = text.firstIndex(of: "]"),
                  text[text.index(after: close)...].hasPrefix(":"),
                  let port = UInt16(text[text.index(close, offsetBy: 2)...]) {
            self = .tcp(host: String(text[text.index(after: text.startIndex)..<close]), port: port)
        } else if let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), colon != text.startIndex {
            self = .tcp(host: String(text[..<colon]), port: port)
        } else {
            return nil
        }
    }

    /// A connected stream socket, with `timeout` for the connect and for every send and
    /// receive after it (SO_SNDTIMEO bounds connect() on Linux).
    func connect(timeout: Double) throws(FastCGIError) -> Int32 {
        switch self {
        case .unix(let path):
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                throw FastCGIError("connect to \(path): the path is longer than a unix socket path can be")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            return try withUnsafePointer(to: &address) { pointer throws(FastCGIError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(FastCGIError) -> Int32 in
                    try Self.connect(family: AF_UNIX, sa, socklen_t(MemoryLayout<sockaddr_un>.size), timeout: timeout, naming: self)
                }
            }
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = AF_UNSPEC
            var found: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &found)
            guard status == 0, let first = found else {
                throw FastCGIError("connect to \(self): cannot resolve \(host): \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(first) }
            var lastError = FastCGIError("connect to \(self): no address")
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let current = entry {
                do {
                    return try Self.connect(family: current.pointee.ai_family, current.pointee.ai_addr, current.pointee.ai_addrlen, timeout: timeout, naming: self)
                } catch {
                    lastError = error
                }
                entry = current.pointee.ai_next
            }
            throw lastError
        }
    }

    private static func connect(family: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t, timeout: Double,
                                naming name: FastCGIAddress) throws(FastCGIError) -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FastCGIError("socket: \(String(cString: strerror(errno)))") }
        setTimeouts(fd, timeout)
        while Glibc.connect(fd, address, length) != 0 {
            if errno == EINTR { continue }
            let reason = errno == EINPROGRESS ? "timed out after \(timeout) s" : String(cString: strerror(errno))
            close(fd)
            throw FastCGIError("connect to \(name): \(reason)")
        }
        return fd
    }

    static func setTimeouts(_ fd: Int32, _ timeout: Double) {
        guard timeout > 0, timeout.isFinite else { return }
        let whole = min(timeout.rounded(.down), Double(Int32.max))
        var tv = timeval(tv_sec: Int(whole), tv_usec: Int((timeout - whole) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
}

public struct FastCGIError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
