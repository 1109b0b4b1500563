import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Chaos: random SIGKILLs to workers every 0.5 s while 4 clients send requests back to back
/// for 20 s (`FORKLIFT_CHAOS_SECONDS`). A kill costs at most the one request its worker was
/// serving; the host replaces every killed worker at once (no start back-off, no emergency
/// restart: SIGKILL is what an operator or the OOM killer sends, not a crash); and nothing
/// leaks: the master's and the host's descriptors and children are the same before and after.
@Suite(.serialized) struct ChaosTests {
    static let workers = 4
    static let killInterval: useconds_t = 500_000

    static var duration: Double {
        ProcessInfo.processInfo.environment["FORKLIFT_CHAOS_SECONDS"].flatMap(Double.init) ?? 20
    }

    @Test func randomWorkerKillsUnderLoadCostAtMostOneRequestEachAndLeakNothing() throws {
        // catch_workers_output gives each worker two pipes in the host: a replaced worker must
        // not leave them behind. The emergency restart is armed, and must not fire for KILLs.
        let server = try ForkliftServer(config: sizedPool("max_children = \(Self.workers)",
                                                          global: "emergency_restart_threshold = 2\nemergency_restart_interval = \"60s\"",
                                                          extra: "catch_workers_output = true"))
        defer { server.shutdown() }
        let master = server.pid

        // Before: the pool ready with all its workers, the process tree and descriptors settled.
        let before = try Self.settledTree(server, "before the chaos")
        let masterFDsBefore = try #require(Self.stableDescriptors(of: master), "the master's descriptors settle")
        let hostFDsBefore = try #require(Self.stableDescriptors(of: before.host), "the host's descriptors settle")
        print("chaos: master \(master) children \(before.masterChildren), host \(before.host) children \(before.hostChildren)")
        print("chaos: master fds before: \(masterFDsBefore.count) \(Descriptors.kinds(masterFDsBefore))")
        print("chaos: host fds before: \(hostFDsBefore.count) \(Descriptors.kinds(hostFDsBefore))")

        // The clients.
        let stop = Flag()
        let started = Date()
        let clients = (0..<4).map { client in
            InBackground { Self.sendRequests(to: server.www, client: client, until: stop, since: started) }
        }

        // The chaos: one random current worker every 0.5 s.
        var kills: [(at: Double, pid: pid_t)] = []
        var noWorker = 0
        let deadline = started.addingTimeInterval(Self.duration)
        while Date() < deadline {
            usleep(Self.killInterval)
            guard let victim = server.workerPIDs().randomElement() else {
                noWorker += 1
                continue
            }
            if kill(victim, SIGKILL) == 0 { kills.append((Date().timeIntervalSince(started), victim)) }
        }
        stop.set()
        let tallies = try clients.map { try #require(try $0.wait(timeout: 20)?.get(), "a client stops within its request timeout") }
        let successes = tallies.map(\.successes).reduce(0, +)
        let failures = tallies.flatMap(\.failures).sorted { $0.at < $1.at }
        let elapsed = Date().timeIntervalSince(started)

        // After: the pool back to its workers, everything else as it was.
        let after = try Self.settledTree(server, "after the chaos")
        let masterFDsAfter = Self.waitForDescriptors(of: master, like: masterFDsBefore)
        let hostFDsAfter = Self.waitForDescriptors(of: after.host, like: hostFDsBefore)

        print("chaos: \(String(format: "%.1f", elapsed)) s, \(kills.count) kills (\(noWorker) times no worker to kill), \(successes) successes, \(failures.count) failures")
        print("chaos: kills at \(kills.map { "\(String(format: "%.2f", $0.at))s:\($0.pid)" }.joined(separator: " "))")
        for failure in failures { print("chaos: failure at \(String(format: "%.3f", failure.at)) s (client \(failure.client), \(failure.request)): \(failure.reason)") }
        print("chaos: master fds before \(masterFDsBefore.count), after \(masterFDsAfter.count) \(Descriptors.kinds(masterFDsAfter)), the very same: \(masterFDsAfter == masterFDsBefore)")
        print("chaos: host fds before \(hostFDsBefore.count), after \(hostFDsAfter.count) \(Descriptors.kinds(hostFDsAfter)), the very same: \(hostFDsAfter == hostFDsBefore)")
        print("chaos: master children after \(after.masterChildren), host children after \(after.hostChildren)")

        #expect(kills.count >= Int(Self.duration), "at least one kill a second: \(kills.count) in \(Self.duration) s")
        #expect(noWorker == 0, "the pool always had a worker to kill")
        #expect(failures.count <= kills.count, "each kill costs at most one request: \(failures.count) failures for \(kills.count) kills")
        #expect(successes > 100, "the pool kept serving: \(successes) successes")
        #expect(server.process.isRunning, "the master lives on")

        // The master: the same descriptors (compared by kind and count: sockets and pipes are
        // told apart only by inode), the same children, none left unreaped (a zombie child
        // shows as "<zombie>").
        #expect(Descriptors.kinds(masterFDsAfter) == Descriptors.kinds(masterFDsBefore),
                "the master's descriptors: before \(masterFDsBefore.sorted { $0.key < $1.key }), after \(masterFDsAfter.sorted { $0.key < $1.key })")
        #expect(after.masterChildren == before.masterChildren, "the master's children (the host, nothing else) are unchanged")
        #expect(after.host == before.host, "the host was not restarted")
        #expect(server.hostGenerations().count == 1, "one host started, ever: \(server.hostGenerations())")

        // The host: same descriptors (two output pipes per worker, no more), same non-worker
        // children (the status responder), the same number of workers, all replacements.
        #expect(Descriptors.kinds(hostFDsAfter) == Descriptors.kinds(hostFDsBefore),
                "the host's descriptors: before \(hostFDsBefore.sorted { $0.key < $1.key }), after \(hostFDsAfter.sorted { $0.key < $1.key })")
        #expect(after.hostHelpers == before.hostHelpers, "the host's status responder lives on")
        #expect(after.workers.count == Self.workers)
        #expect(after.workers.isDisjoint(with: kills.map { $0.pid }), "no killed worker lingers")

        // The log: each killed worker seen dying of the KILL and replaced at once.
        let logged = ForkliftServer.eventually(timeout: 5) {
            let log = server.log
            return kills.allSatisfy { log.contains("worker \($0.pid) was killed by SIGKILL") }
        }
        let lines = server.log.components(separatedBy: "\n")
        #expect(logged, "every kill logged")
        for (_, pid) in kills {
            let line = lines.first { $0.contains("worker \(pid) was killed by SIGKILL") }
            #expect(line?.contains("; replacing it") == true, "worker \(pid) replaced at once: \(line ?? "no line")")
        }
        let replacedWhileServing = lines.filter { $0.contains("was killed by SIGKILL after") && $0.contains("in the middle of a request") }
        print("chaos: \(replacedWhileServing.count) workers logged as killed in the middle of a request, e.g. \(replacedWhileServing.first ?? "none")")
        #expect(!server.log.contains("workers die right after they start"), "no start back-off")
        #expect(!server.log.contains("emergency restart") && !server.log.contains("emergency_restart_threshold"), "no emergency restart for KILLs")
        #expect(!server.log.contains("Fatal error"))
        #expect(try FastCGIClient.get(server.www, "/behaviors", timeout: 10).status == 200)
    }

    // MARK: - Clients

    struct Failure: Sendable {
        let at: Double
        let client: Int
        let request: String
        let reason: String
    }

    struct Tally: Sendable {
        var successes = 0
        var failures: [Failure] = []
    }

    /// Requests back to back until `stop`: mostly fast ones, every fourth 20-50 ms long, so
    /// that kills often hit a busy worker. A failure is any error or a wrong answer.
    static func sendRequests(to address: FastCGIAddress, client: Int, until stop: Flag, since started: Date) -> Tally {
        var tally = Tally()
        var n = client
        while !stop.isSet {
            n += 1
            let slow = n % 4 == 0
            let ms = 20 + (n * 7) % 31
            let request = slow ? "/behaviors/hang?ms=\(ms)" : "/behaviors"
            do {
                let response = slow
                    ? try FastCGIClient.get(address, "/behaviors/hang", query: "ms=\(ms)", timeout: 10)
                    : try FastCGIClient.get(address, "/behaviors", timeout: 10)
                let right = slow ? response.bodyText == "hung \(ms) ms\n" : response.bodyText.hasPrefix("behaviors ")
                if response.status == 200 && right {
                    tally.successes += 1
                } else {
                    tally.failures.append(Failure(at: Date().timeIntervalSince(started), client: client, request: request,
                                                  reason: "status \(response.status): \(response.bodyText.prefix(200))"))
                }
            } catch {
                tally.failures.append(Failure(at: Date().timeIntervalSince(started), client: client, request: request, reason: "\(error)"))
            }
        }
        return tally
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.withLock { value } }
        func set() { lock.withLock { value = true } }
    }

    // MARK: - The process tree

    struct Tree {
        /// The master's direct children, zombies included: pid → title.
        let masterChildren: [pid_t: String]
        let host: pid_t
        /// The host's direct children, zombies included.
        let hostChildren: [pid_t: String]
        /// The host's children that are not workers (the status responder).
        var hostHelpers: Set<pid_t> { Set(hostChildren.filter { !$0.value.hasPrefix("forklift: worker ") }.keys) }
        var workers: Set<pid_t> { Set(hostChildren.filter { $0.value.hasPrefix("forklift: worker pool=www ") }.keys) }
    }

    /// Waits until the master has its one host, the host its workers (all of them on the status
    /// page, so all past worker init) and its status responder, and no child is a zombie or
    /// still carries its parent's title.
    static func settledTree(_ server: ForkliftServer, _ when: String) throws -> Tree {
        var tree: Tree?
        do {
            _ = try server.waitForStatus(server.statusSocket, timeout: 30, "\(Self.workers) workers \(when)") { page in
                let masterChildren = Children.of(server.pid)
                guard masterChildren.count == 1, let only = masterChildren.first, only.value.hasPrefix("forklift: host pool=www ") else { return false }
                let candidate = Tree(masterChildren: masterChildren, host: only.key, hostChildren: Children.of(only.key))
                guard candidate.hostChildren.values.allSatisfy({ $0.hasPrefix("forklift: worker pool=www ") || $0.hasPrefix("forklift: status pool=www ") }),
                      candidate.workers.count == Self.workers, candidate.hostHelpers.count == 1,
                      page.int("total processes") == Self.workers, page.pids == candidate.workers else { return false }
                tree = candidate
                return true
            }
        } catch {
            let children = Children.of(server.pid)
            throw FastCGIError("\(error)\nthe master's children: \(children); theirs: \(children.keys.map { "\($0): \(Children.of($0))" })")
        }
        return try #require(tree)
    }

    /// A process's descriptors once two readings 20 ms apart agree (a host measuring its listen
    /// queue holds a netlink socket for a moment).
    static func stableDescriptors(of pid: pid_t) -> [Int32: String]? {
        var last: [Int32: String] = [:]
        var result: [Int32: String]?
        _ = ForkliftServer.eventually(timeout: 10) {
            let now = Descriptors.of(pid)
            defer { last = now }
            guard !now.isEmpty, now == last else { return false }
            result = now
            return true
        }
        return result
    }

    /// The descriptors once they are of the same kinds as `expected`, or as they are after 5 s.
    static func waitForDescriptors(of pid: pid_t, like expected: [Int32: String]) -> [Int32: String] {
        var now: [Int32: String] = [:]
        _ = ForkliftServer.eventually(timeout: 5) {
            now = Descriptors.of(pid)
            return Descriptors.kinds(now) == Descriptors.kinds(expected)
        }
        return now
    }
}

extension ChaosTests {
    /// `/proc/PID/fd`: descriptor → link target.
    enum Descriptors {
        static func of(_ pid: pid_t) -> [Int32: String] {
            let directory = "/proc/\(pid)/fd"
            var result: [Int32: String] = [:]
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                guard let fd = Int32(entry), let target = try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + entry) else { continue }
                result[fd] = target
            }
            return result
        }

        /// How many of each kind: "socket", "pipe", "anon_inode:[eventfd]", or the file's path.
        static func kinds(_ descriptors: [Int32: String]) -> [String: Int] {
            var result: [String: Int] = [:]
            for target in descriptors.values {
                let kind = target.hasPrefix("socket:") ? "socket" : target.hasPrefix("pipe:") ? "pipe" : target
                result[kind, default: 0] += 1
            }
            return result
        }
    }

    /// A process's direct children from /proc, zombies included (a zombie is a child not reaped).
    enum Children {
        static func of(_ parent: pid_t) -> [pid_t: String] {
            var result: [pid_t: String] = [:]
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                      let close = stat.lastIndex(of: ")") else { continue }
                let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
                guard fields.count > 2, pid_t(fields[1]) == parent else { continue }
                result[pid] = fields[0] == "Z" ? "<zombie>" : (ProcessTable.title(of: pid) ?? "")
            }
            return result
        }
    }
}
