import Foundation
import ForkliftSystem
import Glibc
import Testing

/// The listen queue, measured for unix sockets (sock_diag; PHP-FPM reports 0 there) and TCP.
@Suite struct ListenQueueTests {
    @Test func aUnixListenersQueueIsMeasured() throws {
        let directory = NSTemporaryDirectory() + "forklift-queue-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/q.sock"
        let listener = try Listener.unix(path: path, backlog: 64)
        defer { close(listener) }
        #expect(ListenQueue.measure(listener)?.waiting == 0)
        #expect(ListenQueue.measure(listener)?.backlog == 64)
        let clients = (0..<3).map { _ in connectUnix(path) }
        defer { for fd in clients { close(fd) } }
        #expect(ListenQueue.measure(listener)?.waiting == 3)
    }

    @Test func aTCPListenersQueueIsMeasured() throws {
        let listener = try Listener.tcp(host: "127.0.0.1", port: 0, backlog: 32)
        defer { close(listener) }
        let port = try #require(Listener.boundPort(listener))
        let clients = (0..<2).map { _ in connectTCP(port) }
        defer { for fd in clients { close(fd) } }
        #expect(ForkliftEventually.holds { ListenQueue.measure(listener)?.waiting == 2 })
        #expect(ListenQueue.measure(listener)?.backlog == 32)
    }

    private func connectUnix(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        return fd
    }

    private func connectTCP(_ port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        return fd
    }
}

/// The handshake of a loopback connection completes in the kernel right after connect().
enum ForkliftEventually {
    static func holds(_ condition: () -> Bool) -> Bool {
        for _ in 0..<100 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}
