import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Where a pool listens: IPv6.
@Suite struct ListeningTests {
    @Test(.enabled(if: hasIPv6Loopback(), "this machine has no IPv6 loopback (::1)"))
    func ipv6Loopback() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "[::1]:0"))
        defer { server.shutdown() }
        let port = try #require(server.tcpPort(pool: "www"))
        #expect(server.log.contains("pool www listening on [::1]:\(port)"))
        let hello = try FastCGIClient.get(.tcp(host: "::1", port: port), "/hello")
        #expect(hello.status == 200 && hello.bodyText == "Hello, world!\n")
    }

    /// [::] takes IPv4 clients too, as PHP-FPM's: it sets IPV6_V6ONLY off itself, so it does even
    /// where net.ipv6.bindv6only is 1 (here in a network namespace of its own, to leave the
    /// machine's setting alone).
    @Test(.enabled(if: canMakeNetworkNamespace(), "needs root and unshare --net (util-linux), ip (iproute2) and IPv6"))
    func anyIPv6AddressServesIPv4ClientsWhateverBindv6onlySays() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "[::]:0"), launcher: ["/usr/bin/unshare", "--net", "--", "sh", "-c", Self.namespaceSetup, "sh"])
        defer { server.shutdown() }
        let port = try #require(server.tcpPort(pool: "www"))
        let namespace = "--net=/proc/\(server.pid)/ns/net"
        #expect(try Command.run("/usr/bin/nsenter", [namespace, "cat", "/proc/sys/net/ipv6/bindv6only"]).output == "1\n")
        for host in ["127.0.0.1", "[::1]"] {
            let answer = try Command.run("/usr/bin/nsenter", [namespace, ForkliftServer.binary, "request", "--connect", "\(host):\(port)", "/hello"])
            #expect(answer.status == 0 && answer.output.contains("Hello, world!"), "\(host): \(answer.output)")
        }
    }

    // MARK: - Helpers

    /// Run by sh in a new network namespace before the command: loopback up, IPv6 sockets
    /// IPv6-only by default.
    static let namespaceSetup = "ip link set lo up && echo 1 > /proc/sys/net/ipv6/bindv6only && exec \"$@\""

    static func canMakeNetworkNamespace() -> Bool {
        guard geteuid() == 0, hasIPv6Loopback() else { return false }
        return (try? Command.run("/usr/bin/unshare", ["--net", "--", "sh", "-c", namespaceSetup, "sh", "/bin/true"]))?.status == 0
    }

    static func hasIPv6Loopback() -> Bool {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_addr = in6addr_loopback
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 }
        }
    }
}
