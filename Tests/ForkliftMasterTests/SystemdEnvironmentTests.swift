import ForkliftSystem
import Glibc
import Testing

@Suite struct SystemdEnvironmentTests {
    @Test func withoutNotifySocketNobodyListens() {
        #expect(SystemdEnvironment([:], pid: 10) == nil)
        #expect(SystemdEnvironment(["NOTIFY_SOCKET": "", "WATCHDOG_USEC": "1000"], pid: 10) == nil)
    }

    @Test func theWatchdogIsOursOnlyForOurPid() {
        let mine = SystemdEnvironment(["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "10"], pid: 10)
        #expect(mine == SystemdEnvironment(notifySocket: "/run/n", watchdogSeconds: 3))
        let unnamed = SystemdEnvironment(["NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "500000"], pid: 10)
        #expect(unnamed?.watchdogSeconds == 0.5)
        let another = SystemdEnvironment(["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "11"], pid: 10)
        #expect(another == SystemdEnvironment(notifySocket: "/run/n"), "a watchdog meant for another process")
        #expect(SystemdEnvironment(["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "0"], pid: 10)?.watchdogSeconds == nil)
    }

    @Test func anUpgradesNewMasterGetsTheWatchdogInItsName() {
        let variables = SystemdEnvironment(notifySocket: "/run/n", watchdogSeconds: 3).variables(for: 42)
        #expect(variables.map { "\($0)=\($1)" } == ["NOTIFY_SOCKET=/run/n", "WATCHDOG_USEC=3000000", "WATCHDOG_PID=42"])
    }

    @Test func aRelativeNotifySocketIsRefusedByName() {
        #expect(throws: SystemError.self) { try SystemdNotifier(address: "run/notify") }
    }

    @Test(arguments: [false, true])
    func aDatagramReachesAPathOrAnAbstractSocket(abstract: Bool) throws {
        var template = Array("/tmp/forklift-notify-XXXXXX".utf8CString)
        let directory = String(cString: try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }))
        defer { unlink(directory + "/notify"); rmdir(directory) }
        let name = abstract ? "@forklift-test-\(getpid())" : directory + "/notify"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        #expect(bound == 0)
        let notifier = try SystemdNotifier(address: name)
        defer { notifier.close() }
        try notifier.send(["READY=1", "STATUS=ok"])
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(count > 0 && String(decoding: buffer[0..<max(0, count)], as: UTF8.self) == "READY=1\nSTATUS=ok")
    }
}
