import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// systemd socket activation, through Debian's `systemd-socket-activate`: it binds the
/// sockets, waits for a first client, then starts forklift with them (LISTEN_FDS); that first
/// client is served.
@Suite struct SocketActivationIntegrationTests {
    static var activator: String? { Command.find("systemd-socket-activate") }

    /// The activator under a shell that waits for it: systemd-socket-activate closes every
    /// descriptor but the sockets before it execs forklift, among them the one through which
    /// Foundation's Process learns that its child exited (it then blocks in waitpid for a
    /// child that lives on, and every other Process of the test waits behind it).
    static func launcher(_ arguments: [String]) -> [String] {
        ["/bin/sh", "-c", "\"$@\" & wait $!", "sh", activator!] + arguments
    }

    static func config(listen: String) -> String {
        """
        [global]
        pid = "{dir}/forklift.pid"
        [pool.www]
        listen = "\(listen)"
        max_children = 1
        [pool.www.plugin.hello]
        path = "{build}/libHello.so"
        route = "/hello"
        """
    }

    /// Named like the pool (FileDescriptorName=www), the socket is the pool's whatever its
    /// path; one no pool wants is closed, saying why; a stop leaves systemd's socket file.
    @Test(.enabled(if: activator != nil, "systemd-socket-activate is missing (Debian's systemd package)"))
    func aSocketNamedLikeThePoolIsItsAndTheFirstClientIsServed() throws {
        let server = try ForkliftServer(config: Self.config(listen: "{dir}/configured.sock"), waitUntilReady: false,
                                        launcher: Self.launcher(["-l", "{dir}/www.sock", "-l", "{dir}/extra.sock", "--fdname=www:spare"]))
        defer { server.shutdown() }
        let socket = server.directory + "/www.sock"
        #expect(ForkliftServer.eventually { FileManager.default.fileExists(atPath: socket) }, "the activator listens")
        // This connection starts forklift.
        let hello = try FastCGIClient.get(.unix(socket), "/hello")
        #expect(hello.status == 200 && hello.bodyText == "Hello, world!\n")
        try server.waitForLog("forklift is ready")
        #expect(server.log.contains("pool www listening on \(socket): the socket systemd passed (descriptor 3, FileDescriptorName=www, in place of its listen \(server.directory)/configured.sock)"),
                "\(server.log)")
        #expect(server.log.contains("the socket systemd passed as descriptor 4, FileDescriptorName=spare on \(server.directory)/extra.sock is closed: no pool listens on \(server.directory)/extra.sock or is named spare"),
                "\(server.log)")
        #expect(!FileManager.default.fileExists(atPath: server.directory + "/configured.sock"), "nothing bound at the configured path")
        // A binary upgrade hands the socket on, still systemd's: the new master's stop leaves it too.
        let old = try #require(server.currentMasterPID)
        let upgrade = try Command.run(ForkliftServer.binary, ["upgrade", "--conf", server.configurationDirectory])
        #expect(upgrade.status == 0, "\(upgrade.output)")
        #expect(ForkliftServer.eventually(timeout: 20) { !ProcessTable.isAlive(old) })
        #expect(try FastCGIClient.get(.unix(socket), "/hello").status == 200)
        let master = try #require(server.currentMasterPID)
        #expect(master != old)
        kill(master, SIGTERM)
        #expect(ForkliftServer.eventually(timeout: 20) { !ProcessTable.isAlive(master) })
        #expect(server.log.contains("forklift master exits with status 0"))
        #expect(FileManager.default.fileExists(atPath: socket), "systemd's socket file stays: it is the socket unit's")
    }

    /// Without a name, a socket on a pool's address is that pool's; a reload keeps it.
    @Test(.enabled(if: activator != nil, "systemd-socket-activate is missing (Debian's systemd package)"))
    func aSocketOnThePoolsAddressIsItsAndAReloadKeepsIt() throws {
        let port = try FreePort.pick()
        let server = try ForkliftServer(config: Self.config(listen: "127.0.0.1:\(port)"), waitUntilReady: false,
                                        launcher: Self.launcher(["-l", "127.0.0.1:\(port)"]))
        defer { server.shutdown() }
        let address = FastCGIAddress.tcp(host: "127.0.0.1", port: port)
        #expect(ForkliftServer.eventually { (try? FastCGIClient.get(address, "/hello", timeout: 5))?.status == 200 })
        try server.waitForLog("forklift is ready")
        #expect(server.log.contains("pool www listening on 127.0.0.1:\(port): the socket systemd passed (descriptor 3)"), "\(server.log)")
        // Made non-blocking (systemd passes it blocking): a worker losing the race for a
        // connection must not block in accept().
        let master = try #require(server.currentMasterPID)
        let fdinfo = try String(contentsOfFile: "/proc/\(master)/fdinfo/3", encoding: .utf8)
        let flags = try #require(fdinfo.split(separator: "\n").first { $0.hasPrefix("flags:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) })
        #expect(flags & Int(O_NONBLOCK) != 0, "\(fdinfo)")
        let reload = try server.reload()
        #expect(reload.status == 0, "\(reload.output)")
        #expect(try FastCGIClient.get(address, "/hello").status == 200)
    }
}
