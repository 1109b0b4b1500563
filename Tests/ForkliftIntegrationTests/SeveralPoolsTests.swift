import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Several pools in one master (issue 10, point 1): one pool's failure — a host that keeps
/// dying, a plugin that no longer loads — never stops another pool from serving.
@Suite struct SeveralPoolsTests {
    static let config = """
        [global]
        pid = "{dir}/forklift.pid"
        die_timeout = "5s"
        [pool.a]
        listen = "{dir}/a.sock"
        max_children = 1
        [pool.a.plugin.hello]
        path = "{build}/libHello.so"
        route = "/"
        [pool.b]
        listen = "{dir}/b.sock"
        max_children = 1
        [pool.b.plugin.b]
        path = "{dir}/b.so"
        route = "/"
        """

    /// Pool b's plugin file is replaced by one that does not load and its host killed: b's
    /// new hosts fail, again and again with growing delays, while a serves every request;
    /// once the file is good again, b comes back by itself.
    @Test func aCrashLoopingPoolLeavesTheOthersServing() throws {
        let server = try ForkliftServer(config: Self.config, prepare: { directory in
            try FileManager.default.copyItem(atPath: ForkliftServer.buildDirectory + "/libForkliftTestBehaviors.so", toPath: directory + "/b.so")
        })
        defer { server.shutdown() }
        let a = FastCGIAddress.unix(server.directory + "/a.sock"), b = FastCGIAddress.unix(server.directory + "/b.sock")
        #expect(try FastCGIClient.get(b, "/").bodyText.hasPrefix("behaviors "))
        let good = server.directory + "/b.so.good"
        try FileManager.default.moveItem(atPath: server.directory + "/b.so", toPath: good)
        try "not a library".write(toFile: server.directory + "/b.so", atomically: true, encoding: .utf8)
        let hostB = try #require(ProcessTable.descendants(of: server.pid).first { $0.value.hasPrefix("forklift: host pool=b") }?.key)
        kill(hostB, SIGKILL)
        // Two new hosts of b have failed (at once, then after 1 s): b is in a loop with growing delays.
        let failures = { server.log.split(separator: "\n").filter { $0.contains("[master") && $0.contains("pool b gen") && $0.contains("failed: ") }.count }
        #expect(ForkliftServer.eventually(timeout: 20) { failures() >= 2 }, "\(server.log)")
        #expect(server.log.contains("not a shared object"))
        for _ in 0..<20 {
            let hello = try FastCGIClient.get(a, "/")
            #expect(hello.status == 200 && hello.bodyText == "Hello, world!\n")
        }
        #expect(ProcessTable.isAlive(server.pid))
        try FileManager.default.removeItem(atPath: server.directory + "/b.so")
        try FileManager.default.moveItem(atPath: good, toPath: server.directory + "/b.so")
        #expect(ForkliftServer.eventually(timeout: 20) { (try? FastCGIClient.get(b, "/", timeout: 1))?.bodyText.hasPrefix("behaviors ") == true })
        #expect(try FastCGIClient.get(a, "/").status == 200)
    }
}
