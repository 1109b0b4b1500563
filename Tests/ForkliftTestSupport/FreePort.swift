import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum FreePort {
    /// A port the kernel just handed out on 127.0.0.1 and we released again. A parallel test
    /// may take it meanwhile: whoever binds it must be ready to pick another.
    public static func pick() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw FastCGIError("cannot pick a free port") }
        return UInt16(bigEndian: address.sin_port)
    }
}
