import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A unix datagram socket standing in for systemd's NOTIFY_SOCKET: every datagram forklift
/// sends is one message of `KEY=VALUE` lines.
public final class NotifySocket: @unchecked Sendable {
    public let path: String
    private let fd: Int32

    public init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw FastCGIError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (index, byte) in bytes.enumerated() { raw[index] = byte } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw FastCGIError("cannot bind \(path): errno \(errno)") }
    }

    /// The next message, waiting up to `timeout` seconds for it.
    public func next(timeout: Double = 30) -> [String]? {
        var request = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&request, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self).components(separatedBy: "\n")
    }

    /// The next message that carries more than a STATUS= refresh or a WATCHDOG=1.
    public func nextState(timeout: Double = 30) -> [String]? {
        while let message = next(timeout: timeout) {
            if message.contains(where: { !$0.hasPrefix("STATUS=") && $0 != "WATCHDOG=1" }) { return message }
        }
        return nil
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
