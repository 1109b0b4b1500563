import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Who may connect, and where: unix sockets' owner, group and mode (checked by a client
/// running as another user), IPv6, and listen_allowed_clients refusing an address.
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

    /// An allowed client is served; a connection from another address is closed unread, and
    /// logged once (one worker: the interval is per worker) however often it tries. On [::] an
    /// IPv4 client arrives IPv4-mapped, and "127.0.0.1" still admits it.
    @Test(arguments: ["127.0.0.1:0", "[::]:0"])
    func allowedClients(listen: String) throws {
        let server = try ForkliftServer(config: poolConfig(listen: listen, children: 1, pool: "listen_allowed_clients = \"127.0.0.1\""))
        defer { server.shutdown() }
        let port = try #require(server.tcpPort(pool: "www"))
        let allowed = try FastCGIClient.get(.tcp(host: "127.0.0.1", port: port), "/hello")
        #expect(allowed.status == 200 && allowed.bodyText == "Hello, world!\n")
        for attempt in 1...3 {
            let answer = try Self.request(from: "127.0.0.2", to: port)
            #expect(answer.isEmpty, "attempt \(attempt): the refused client got \(answer.count) bytes")
        }
        try server.waitForLog("refused a connection from 127.0.0.2: not in listen_allowed_clients")
        #expect(try FastCGIClient.get(.tcp(host: "127.0.0.1", port: port), "/hello").status == 200, "the worker goes on")
        #expect(server.log.components(separatedBy: "refused a connection from 127.0.0.2").count == 2, "one line for three refusals:\n\(server.log)")
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

    /// A whole GET /hello sent from a socket bound to `source`; what came back before the
    /// server closed the connection.
    static func request(from source: String, to port: UInt16) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, connected == 0 else { throw FastCGIError("connect from \(source): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = FastCGIRecords.request(params: FastCGIClient.cgiParams(path: "/hello"), body: [], keepConnection: false)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { received += buffer[0..<count]; continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw FastCGIError("not closed within 10 s") }
            break // closed, or reset (closed with the request unread)
        }
        return received
    }
}
