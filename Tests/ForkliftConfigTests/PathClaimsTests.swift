import ForkliftConfig
import Testing

/// Every pair of a pool's socket (`listen`, `status_listen`) and something else that may take
/// its address or path: the error names both keys, the one refused as its key and the other
/// in its message, whichever table each is in. (The issue's own case, listen = "x.sock" beside
/// pid = "x.pid", word for word: PoolSizingTests.aListenAddressMayNotBeTheControlSocketOrThePidFile.)
@Suite struct PathClaimsTests {
    /// (the other one's key, the [global] lines, pool a's lines, the address pool b's socket takes).
    static let others: [(key: String, global: String, a: String, address: String)] = [
        ("pool.a.listen", "", "listen = \"run/x.sock\"", "run/x.sock"),
        ("pool.a.status_listen", "", "status_listen = \"run/x.sock\"", "run/x.sock"),
        ("pool.a.listen", "", "listen = \"127.0.0.1:9000\"", "127.0.0.1:9000"),
        ("pool.a.listen", "", "listen = \"[::1]:9000\"", "[0:0::1]:9000"),
        ("pool.a.listen", "", "listen = \"[::]:9000\"", "0.0.0.0:9000"),
        ("pool.a.listen", "", "listen = \"9000\"", "127.0.0.2:9000"),
        ("pool.a.status_listen", "", "status_listen = \"[::]:9001\"", "[::1]:9001"),
        ("global.pid", "pid = \"run/x.pid\"", "", "run/x.sock"),
        ("global.control_socket", "control_socket = \"run/c.sock\"", "", "run/c.sock"),
        ("global.pid", "pid = \"run/x.pid\"", "", "unix:run/x.pid"),
        ("global.error_log", "error_log = \"log/x.sock\"", "", "log/x.sock"),
        ("pool.a.slowlog", "", "slowlog = \"log/x.sock\"", "log/x.sock"),
        ("pool.a.access_log", "", "access_log = \"log/x.sock\"", "log/x.sock"),
    ]

    static func pool(_ name: String, _ lines: String) -> String {
        """
        [pool.\(name)]
        max_children = 1
        status_path = "/status"
        \(lines)
        [pool.\(name).plugin.hello]
        path = "plugins/libHello.so"
        route = "/hello"

        """
    }

    @Test(arguments: ["listen", "status_listen"], others.indices)
    func aCollisionNamesBothKeys(key: String, other index: Int) throws {
        let other = Self.others[index]
        var a = other.a
        if !a.hasPrefix("listen =") { a += "\nlisten = \"127.0.0.3:7000\"" }
        var b = "\(key) = \"\(other.address)\""
        if key == "status_listen" { b += "\nlisten = \"127.0.0.4:7000\"" }
        let text = "[global]\n\(other.global)\n" + Self.pool("a", a) + Self.pool("b", b)
        let error = try #require(parseError(text))
        #expect(error.key == "pool.b.\(key)", "\(error)")
        #expect(error.message.contains(other.key), "\(error)\nmissing: \(other.key)")
    }

    /// A numeric address in its one spelling, so that the collisions above see through another
    /// spelling of it; names stay as written (they are resolved when the socket is opened).
    @Test(arguments: [
        ("[0:0::1]:9000", ListenAddress.tcp(host: "::1", port: 9000)),
        ("[::FFFF:127.0.0.1]:9000", .tcp(host: "::ffff:127.0.0.1", port: 9000)),
        ("[0::0]:9000", .tcp(host: "::", port: 9000)),
        ("0.0.0.0:9000", .tcp(host: "0.0.0.0", port: 9000)),
        ("localhost:9000", .tcp(host: "localhost", port: 9000)),
    ])
    func numericHostsHaveOneSpelling(text: String, address: ListenAddress) throws {
        #expect(try parse(minimalPool.replacingOccurrences(of: "127.0.0.1:9000", with: text)).pools.first?.listen == address)
    }
}
