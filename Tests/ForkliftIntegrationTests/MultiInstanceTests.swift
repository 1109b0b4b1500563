import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// More than one machine (issue 10, point 7): three Forklift instances, each on a "machine" of
/// its own, behind one nginx with docs/frontends/nginx-several.conf. Under load through nginx,
/// each instance is reloaded and then binary-upgraded in turn, then one is killed outright:
/// nginx answers 200 throughout, except for requests in flight on the killed instance.
@Suite struct MultiInstanceTests {
    @Test func rollingReloadUpgradeAndAnInstanceDyingBehindNginx() throws {
        try #require(geteuid() == 0, "runs as root (CI does): it makes network namespaces")
        let network = try TestMachines(count: 3)
        defer { network.remove() }
        print("MultiInstanceTests: \(network.kind.description)")

        var instances: [ForkliftServer] = []
        defer { for instance in instances { instance.stopWherever() } }
        for (index, machine) in network.machines.enumerated() {
            instances.append(try ForkliftServer(config: """
                [global]
                pid = "{dir}/forklift.pid"
                die_timeout = "10s"
                [pool.www]
                listen = "\(machine.address):\(machine.port)"
                listen_allowed_clients = "\(machine.client)"
                max_children = 2
                ping_path = "/ping"
                [pool.www.plugin.hello]
                path = "{build}/libHello.so"
                route = "/"
                settings = { greeting = "instance \(index + 1)" }
                """, launcher: machine.launcher))
        }
        let nginx = try FrontEnd(.nginx, in: instances[0].directory) { ports in
            try FrontEnd.example("nginx-several.conf", replacing: [
                "listen 80;": "listen 127.0.0.1:\(ports[0]);",
                "10.0.1.2:9000": network.machines[0].endpoint, "10.0.2.2:9000": network.machines[1].endpoint,
                "10.0.3.2:9000": network.machines[2].endpoint,
            ])
        }
        defer { nginx.stop() }

        // nginx balances across all three.
        var seen: Set<String> = []
        for _ in 0..<30 { seen.insert(try HTTPConnection.once(port: nginx.port, "GET", "/", timeout: 10).text) }
        #expect(seen == ["instance 1, world!\n", "instance 2, world!\n", "instance 3, world!\n"], "\(seen)")

        let load = HTTPLoad(clients: 4, port: nginx.port)
        defer { _ = load.stop() }
        try load.waitForMore(100)
        for instance in instances {
            let reload = try Command.run(ForkliftServer.binary, ["reload", "--conf", instance.configurationDirectory])
            #expect(reload.status == 0, "\(reload.output)")
            try load.waitForMore(100)
            let before = try #require(instance.currentMasterPID)
            let upgrade = try Command.run(ForkliftServer.binary, ["upgrade", "--conf", instance.configurationDirectory])
            #expect(upgrade.status == 0 && upgrade.output.contains("upgraded: the new master is pid"), "\(upgrade.output)")
            #expect(ForkliftServer.eventually(timeout: 20) { !ProcessTable.isAlive(before) }, "the old master drains and exits")
            try load.waitForMore(100)
        }
        // The health check a balancer with active checks would run, against ping_path.
        for machine in network.machines {
            let ping = try Command.run(ForkliftServer.binary, ["request", "--fail", "--connect", machine.endpoint, "/ping"])
            #expect(ping.status == 0 && ping.output.contains("pong"), "\(machine.endpoint): \(ping.output)")
        }

        // Instance 3 dies at once, master, host and workers (as its machine would).
        let victim = instances[2]
        let master = try #require(victim.currentMasterPID)
        let family = [master] + ProcessTable.descendants(of: master).keys
        for pid in family { kill(pid, SIGKILL) }
        #expect(ForkliftServer.eventually { family.allSatisfy { !ProcessTable.isAlive($0) } })
        // Requests sent from now on cannot reach it; those sent before may have been in flight there.
        let killedAt = Date()
        try load.waitForMore(300)
        let ping = try Command.run(ForkliftServer.binary, ["request", "--fail", "--connect", network.machines[2].endpoint, "/ping"])
        #expect(ping.status != 0, "the dead instance fails its health check: \(ping.output)")

        let outcomes = load.stop()
        let failures = outcomes.filter { $0.status != 200 }
        let beforeKill = failures.filter { $0.sent < killedAt }
        #expect(beforeKill.isEmpty, "failed during the rolling reload and upgrade: \(beforeKill.prefix(5))\n\(nginx.diagnostics(instances[0]))")
        // At most the requests that were in flight on the killed instance: one per client.
        #expect(failures.count <= 4, "\(failures.count) failed after the kill: \(failures.prefix(5))")
        let afterKill = outcomes.filter { $0.sent > killedAt }
        #expect(afterKill.count >= 300 && !afterKill.contains { $0.body == "instance 3, world!\n" }, "\(afterKill.count) after the kill")
        #expect(Set(afterKill.filter { $0.status == 200 }.map(\.body)) == ["instance 1, world!\n", "instance 2, world!\n"])
        #expect(outcomes.count > 1000, "\(outcomes.count) requests")
        print("MultiInstanceTests: \(outcomes.count) requests through nginx, \(failures.count) failed (in flight on the killed instance)")
    }
}

/// The machines of the test: network namespaces joined to this one by veth pairs where this
/// machine allows them (each instance then has an address and a network of its own), else
/// addresses of 127.0.0.0/8 on the loopback.
final class TestMachines {
    enum Kind: CustomStringConvertible {
        case namespaces, loopbackAddresses
        var description: String {
            switch self {
            case .namespaces: "three network namespaces joined by veth pairs (10.x.N.2, nginx on 10.x.N.1)"
            case .loopbackAddresses: "three loopback addresses (127.0.0.2x): network namespaces are not permitted here, or FORKLIFT_TEST_LOOPBACK_MACHINES=1"
            }
        }
    }

    struct Machine {
        /// Where the instance listens, and the address nginx connects from.
        let address: String
        let port: UInt16
        let client: String
        /// What runs a process on it.
        let launcher: [String]
        var endpoint: String { "\(address):\(port)" }
    }

    let kind: Kind
    private(set) var machines: [Machine] = []
    private var namespaces: [String] = []
    private let ip: String?

    init(count: Int) throws {
        ip = Command.find("ip")
        let tag = getpid() % 100_000
        let subnet = 200 + Int(getpid() % 50)
        // FORKLIFT_TEST_LOOPBACK_MACHINES=1 takes the loopback way even where namespaces work.
        let loopbackOnly = ProcessInfo.processInfo.environment["FORKLIFT_TEST_LOOPBACK_MACHINES"] == "1"
        if !loopbackOnly, let ip, (try? Command.run(ip, ["netns", "add", "fl\(tag)n1"]))?.status == 0 {
            kind = .namespaces
            namespaces.append("fl\(tag)n1")
            for index in 1...count {
                let namespace = "fl\(tag)n\(index)", outside = "fl\(tag)h\(index)", inside = "fl\(tag)c\(index)"
                let prefix = "10.\(subnet).\(index)"
                if index > 1 {
                    try Self.run(ip, ["netns", "add", namespace])
                    namespaces.append(namespace)
                }
                try Self.run(ip, ["link", "add", outside, "type", "veth", "peer", "name", inside])
                try Self.run(ip, ["link", "set", inside, "netns", namespace])
                try Self.run(ip, ["addr", "add", "\(prefix).1/24", "dev", outside])
                try Self.run(ip, ["link", "set", outside, "up"])
                try Self.run(ip, ["netns", "exec", namespace, ip, "addr", "add", "\(prefix).2/24", "dev", inside])
                try Self.run(ip, ["netns", "exec", namespace, ip, "link", "set", inside, "up"])
                try Self.run(ip, ["netns", "exec", namespace, ip, "link", "set", "lo", "up"])
                machines.append(Machine(address: "\(prefix).2", port: 9000, client: "\(prefix).1", launcher: [ip, "netns", "exec", namespace]))
            }
        } else {
            kind = .loopbackAddresses
            for index in 1...count {
                machines.append(Machine(address: "127.0.0.\(20 + index)", port: try FreePort.pick(), client: "127.0.0.0/8", launcher: []))
            }
        }
    }

    /// Deleting a namespace deletes the veth end inside it, and so the pair.
    func remove() {
        guard let ip else { return }
        for namespace in namespaces { _ = try? Command.run(ip, ["netns", "delete", namespace]) }
        namespaces = []
    }

    private static func run(_ command: String, _ arguments: [String]) throws {
        let result = try Command.run(command, arguments)
        guard result.status == 0 else { throw FastCGIError("\(command) \(arguments.joined(separator: " ")): \(result.output)") }
    }
}

/// HTTP clients sending GETs back to back through a front end, each on a connection of its
/// own (reopened after an error), recording every outcome.
final class HTTPLoad: @unchecked Sendable {
    struct Outcome: CustomStringConvertible {
        let sent: Date
        let status: Int?
        let body: String
        let error: String?
        var description: String { error ?? "status \(status ?? 0): \(body.prefix(80))" }
    }

    private let lock = NSLock()
    private var outcomes: [Outcome] = []
    private var stopping = false
    private var running = 0

    init(clients: Int, port: UInt16) {
        running = clients
        for _ in 0..<clients {
            Thread { [self] in
                let connection = HTTPConnection(port: port, timeout: 20)
                while !lock.withLock({ stopping }) {
                    let sent = Date()
                    let outcome: Outcome
                    do {
                        let response = try connection.request("GET", "/")
                        outcome = Outcome(sent: sent, status: response.status, body: response.text, error: nil)
                    } catch {
                        connection.close()
                        outcome = Outcome(sent: sent, status: nil, body: "", error: "\(error)")
                    }
                    lock.withLock { outcomes.append(outcome) }
                }
                lock.withLock { running -= 1 }
            }.start()
        }
    }

    /// Returns once `count` more requests have been answered (or failed) than now.
    func waitForMore(_ count: Int, timeout: Double = 30) throws {
        let target = lock.withLock { outcomes.count } + count
        guard ForkliftServer.eventually(timeout: timeout, { lock.withLock { outcomes.count } >= target }) else {
            throw FastCGIError("the load through the front end stalled at \(lock.withLock { outcomes.count }) requests")
        }
    }

    func stop() -> [Outcome] {
        lock.withLock { stopping = true }
        _ = ForkliftServer.eventually(timeout: 30) { lock.withLock { running == 0 } }
        return lock.withLock { outcomes }
    }
}

extension ForkliftServer {
    /// The master now serving, from the pid file (after an upgrade it is not the process the
    /// test started).
    var currentMasterPID: pid_t? {
        (try? String(contentsOfFile: directory + "/forklift.pid", encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Stops whichever master serves now and everything below it.
    func stopWherever() {
        if let master = currentMasterPID, master != pid, ProcessTable.isAlive(master) {
            let family = [master] + ProcessTable.descendants(of: master).keys
            kill(master, SIGTERM)
            if !ForkliftServer.eventually(timeout: 10, { !ProcessTable.isAlive(master) }) { for pid in family { kill(pid, SIGKILL) } }
        }
        shutdown()
    }
}
