import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Who may connect, and where: unix sockets' owner, group and mode (checked by a client
/// running as another user), and IPv6.
@Suite struct ListeningTests {
    /// A unix socket is 0660 and its group is listen_group (both sockets of the pool): a client
    /// in that group connects, one outside it is refused by the kernel.
    @Test func unixSocketsGetTheirOwnerGroupAndMode() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", pool: """
            listen_group = "www-data"
            status_path = "/status"
            status_listen = "{dir}/status.sock"
            """), prepare: { chmod($0, 0o711) }) // the users below must reach the sockets in it
        defer { server.shutdown() }
        for name in ["www.sock", "status.sock"] {
            let info = try Self.stat(server.directory + "/" + name)
            #expect(info.st_mode & 0o7777 == 0o660, "\(name): \(String(info.st_mode & 0o7777, radix: 8))")
            #expect(info.st_uid == geteuid() && info.st_gid == 33, "\(name): \(info.st_uid):\(info.st_gid)")
        }
        #expect(!server.log.contains(" is now "), "created with them, before listen(): nothing is left to change at the start's commit")
        try requireRoot()
        let member = try Self.request(asUser: 65534, group: 33, server.directory + "/www.sock")
        #expect(member.status == 0 && member.output.contains("Hello, world!"), "\(member.output)")
        let stranger = try Self.request(asUser: 65534, group: 65534, server.directory + "/www.sock")
        #expect(stranger.status != 0 && stranger.output.contains("Permission denied"), "\(stranger.output)")
    }

    /// A reload that changes listen_mode, listen_owner or listen_group changes the socket the
    /// pool already listens on (not a new one: what waits in its backlog stays), and says so.
    @Test func aReloadChangesTheOpenSocketsPermissions() throws {
        let config = { (lines: String) in poolConfig(listen: "{dir}/www.sock", pool: lines) }
        let server = try ForkliftServer(config: config(""))
        defer { server.shutdown() }
        let path = server.directory + "/www.sock"
        let before = try Self.stat(path)
        #expect(before.st_mode & 0o7777 == 0o660, "the default, as PHP-FPM's")
        try server.writeConfig(config("listen_mode = \"0600\"\nlisten_owner = \"daemon\""))
        let reload = try server.reload()
        #expect(reload.status == 0, "\(reload.output)")
        try server.waitForLog("\(path) is now 0600 daemon:daemon (listen_owner, listen_group, listen_mode; it was 0660 root:root)")
        let after = try Self.stat(path)
        #expect(after.st_mode & 0o7777 == 0o600 && after.st_uid == 1 && after.st_gid == 1 && after.st_ino == before.st_ino, "the same socket")
        #expect(try FastCGIClient.get(.unix(path), "/hello").status == 200)
    }

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

    static func stat(_ path: String) throws -> Glibc.stat {
        var info = Glibc.stat()
        guard lstat(path, &info) == 0 else { throw FastCGIError("lstat \(path): \(String(cString: strerror(errno)))") }
        return info
    }

    func requireRoot() throws {
        try #require(geteuid() == 0, "runs as root (CI does): it switches users")
    }

    /// `forklift request` run as another user and group (setpriv, util-linux).
    static func request(asUser uid: uid_t, group gid: gid_t, _ socket: String) throws -> Command.Result {
        try Command.run("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", ForkliftServer.binary,
                                             "request", "--connect", socket, "/hello"])
    }

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
