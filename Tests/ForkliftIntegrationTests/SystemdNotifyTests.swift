import Foundation
import ForkliftTestSupport
import Glibc
import Testing

/// `Type=notify`: a test socket stands in for systemd's NOTIFY_SOCKET.
@Suite struct SystemdNotifyTests {
    func monotonicMicroseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }

    @Test func startReloadAndStopAreToldInOrder() throws {
        var notify: NotifySocket?
        let server = try ForkliftServer(config: reloadConfig(), environment: ["NOTIFY_SOCKET": "{dir}/notify"]) { dir in
            try FileManager.default.copyItem(atPath: versionOne, toPath: dir + "/versioned.so")
            notify = try NotifySocket(path: dir + "/notify")
        }
        defer { server.shutdown() }
        let socket = try #require(notify)
        let ready = try #require(socket.nextState(), "no READY=1")
        #expect(ready.prefix(2) == ["MAINPID=\(server.pid)", "READY=1"], "\(ready)")
        #expect(ready.last?.hasPrefix("STATUS=ready: 1 pool, 2 workers (0 busy), ") == true, "\(ready)")
        #expect(try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/v").status == 200, "ready means serving")

        // Hosts and workers must not talk to systemd.
        for (pid, title) in server.descendants() {
            let environment = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            #expect(!String(decoding: environment, as: UTF8.self).contains("NOTIFY_SOCKET="), "\(title) inherited NOTIFY_SOCKET")
        }

        let before = monotonicMicroseconds()
        server.signal(SIGHUP)
        let reloading = try #require(socket.nextState(), "no RELOADING=1")
        let after = monotonicMicroseconds()
        #expect(reloading.first == "RELOADING=1", "\(reloading)")
        let stamp = reloading.first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) }
        #expect(stamp.map { before <= $0 && $0 <= after } == true, "MONOTONIC_USEC \(String(describing: stamp)) not within [\(before), \(after)]")
        let reloaded = try #require(socket.nextState(), "no READY=1 after the reload")
        #expect(reloaded.first == "READY=1" && !reloaded.contains { $0.hasPrefix("MAINPID=") }, "\(reloaded)")
        try server.waitForLog("reloaded in")

        server.signal(SIGTERM)
        let stopping = try #require(socket.nextState(), "no STOPPING=1")
        #expect(stopping.first == "STOPPING=1", "\(stopping)")
        #expect(server.waitForExit() == 0)
    }

    @Test func theWatchdogIsPetted() throws {
        var notify: NotifySocket?
        let server = try ForkliftServer(config: reloadConfig(), environment: ["NOTIFY_SOCKET": "{dir}/notify", "WATCHDOG_USEC": "200000"]) { dir in
            try FileManager.default.copyItem(atPath: versionOne, toPath: dir + "/versioned.so")
            notify = try NotifySocket(path: dir + "/notify")
        }
        defer { server.shutdown() }
        let socket = try #require(notify)
        var pets = 0
        while pets < 3, let message = socket.next(timeout: 10) {
            if message == ["WATCHDOG=1"] { pets += 1 }
        }
        #expect(pets == 3, "WATCHDOG=1 every 100 ms")
        try server.waitForLog("WATCHDOG=1 every 0.1 s")
    }

    @Test func anUpgradeHandsTheServiceToTheNewMaster() throws {
        var notify: NotifySocket?
        let server = try ForkliftServer(config: reloadConfig(), executable: "{dir}/bin/forklift",
                                        environment: ["NOTIFY_SOCKET": "{dir}/notify"]) { dir in
            try FileManager.default.copyItem(atPath: versionOne, toPath: dir + "/versioned.so")
            try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: ForkliftServer.binary, toPath: dir + "/bin/forklift")
            notify = try NotifySocket(path: dir + "/notify")
        }
        defer { server.shutdown() }
        let socket = try #require(notify)
        #expect(socket.nextState()?.contains("READY=1") == true)
        let dir = server.directory
        let result = try Command.run(dir + "/bin/forklift", ["upgrade", "--conf", server.configurationDirectory])
        #expect(result.status == 0, "\(result.output)")
        #expect(server.waitForExit(timeout: 20) == 0)

        #expect(socket.nextState()?.first == "RELOADING=1", "the upgrade is a reload to systemd")
        let handover = try #require(socket.nextState())
        let named = handover.first.flatMap { $0.hasPrefix("MAINPID=") ? pid_t($0.dropFirst("MAINPID=".count)) : nil }
        let newMaster = try #require(named, "the old master names its successor: \(handover)")
        #expect(newMaster != server.pid)
        // The new master takes the pid file over when the old one says go, which can be a moment
        // after the old one has exited (seen once in CI): what the file says is waited for.
        let pidFile = dir + "/forklift.pid"
        #expect(ForkliftServer.eventually(timeout: 10) {
            (try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "\(newMaster)"
        }, "the pid file names the master the old one handed over to")
        let ready = try #require(socket.nextState())
        #expect(ready.prefix(2) == ["MAINPID=\(newMaster)", "READY=1"], "\(ready)")
        #expect(try FastCGIClient.get(.unix(dir + "/www.sock"), "/v").status == 200)

        let stop = try Command.run(dir + "/bin/forklift", ["stop", "--conf", server.configurationDirectory])
        #expect(stop.status == 0, "\(stop.output)")
        // The old master left without STOPPING=1: the first one comes from the new master's stop.
        let stopping = try #require(socket.nextState())
        #expect(stopping.first == "STOPPING=1", "\(stopping)")
        #expect(ForkliftServer.eventually { !ProcessTable.isAlive(newMaster) })
    }
}
