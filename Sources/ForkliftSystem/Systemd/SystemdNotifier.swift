import Glibc

/// sd_notify without libsystemd: one datagram of `KEY=VALUE` lines to the socket named by
/// NOTIFY_SOCKET. systemd reads the sender's pid from the socket's credentials, so the
/// process that sends is the one it believes (MAINPID, NotifyAccess).
public struct SystemdNotifier: Sendable {
    public let address: String
    private let fd: Int32

    /// Opens an unbound datagram socket; nothing is sent yet.
    public init(address: String) throws {
        guard address.hasPrefix("/") || address.hasPrefix("@") else {
            throw SystemError("NOTIFY_SOCKET=\(address): neither an absolute socket path nor an abstract name starting with @", errno: EINVAL)
        }
        guard address.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else {
            throw SystemError("NOTIFY_SOCKET=\(address): longer than a unix socket address may be", errno: ENAMETOOLONG)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(AF_UNIX, SOCK_DGRAM)") }
        self.address = address
        self.fd = fd
    }

    /// Sends `lines` as one datagram. A full socket buffer is an error, not a wait: the master
    /// must never block on its service manager.
    public func send(_ lines: [String]) throws {
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        var path = Array(address.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 } // abstract namespace
        withUnsafeMutableBytes(of: &target.sun_path) { raw in
            for (index, byte) in path.enumerated() { raw[index] = byte }
        }
        // An abstract name is exactly its bytes; a path ends at its NUL.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (path.first == 0 ? 0 : 1))
        let message = Array(lines.joined(separator: "\n").utf8)
        let sent = withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), address, length) }
            }
        }
        if sent < 0 { throw SystemError("sendto \(address)") }
    }

    public func close() { closeDescriptor(fd) }
}
