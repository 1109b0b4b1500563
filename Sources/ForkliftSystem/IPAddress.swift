import Glibc

/// Numeric IP addresses as their bytes (4 for IPv4, 16 for IPv6) and as text.
public enum IPAddress {
    /// The bytes of "127.0.0.1" or "::1"; nil for anything else (a name, a range).
    public static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// The usual spelling of 4 or 16 bytes ("::1", never "0:0::1").
    public static func text(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let done = bytes.withUnsafeBytes { inet_ntop(bytes.count == 4 ? AF_INET : AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) != nil }
        return done ? String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }

    /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, how an IPv4 client of a [::] listener
    /// arrives) as the 4 bytes of its IPv4 address; any other address as it is.
    public static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
        let mapped = bytes.count == 16 && bytes.prefix(10).allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
        return mapped ? Array(bytes.suffix(4)) : bytes
    }

    /// A connected socket's peer, its address bytes and port; nil for a unix socket's.
    public static func peer(of fd: Int32) -> (bytes: [UInt8], port: UInt16)? {
        address(of: fd, getpeername)
    }

    /// A socket's own address (a listener's), its bytes and port; nil for a unix socket's.
    public static func local(of fd: Int32) -> (bytes: [UInt8], port: UInt16)? {
        address(of: fd, getsockname)
    }

    private static func address(of fd: Int32, _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32)
        -> (bytes: [UInt8], port: UInt16)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) == 0 } }
        guard ok else { return nil }
        return withUnsafePointer(to: &storage) { pointer in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var ip = address.pointee.sin_addr
                    return (withUnsafeBytes(of: &ip) { Array($0) }, UInt16(bigEndian: address.pointee.sin_port))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var ip = address.pointee.sin6_addr
                    return (withUnsafeBytes(of: &ip) { Array($0) }, UInt16(bigEndian: address.pointee.sin6_port))
                }
            default:
                return nil
            }
        }
    }
}
