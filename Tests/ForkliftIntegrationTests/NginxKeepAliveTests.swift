import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Debian's nginx-light with upstream keep-alive (`keepalive 8`, `fastcgi_keep_conn on`) in
/// front of a pool of 2 workers: kept connections must neither starve the pool nor lose a
/// request when the workers holding them leave (recycle, retire after a reload).
@Suite(.serialized) struct NginxKeepAliveTests {
    static let echo = """
        [pool.www.plugin.echo]
        path = "{build}/libEcho.so"
        route = "/echo"
        """

    /// nginx keeps up to 8 connections to a pool of 2: both workers end up holding one, idle.
    /// A client of a server block without keep-alive (and the 6 other connections of the
    /// burst) must still be answered at once: an idle kept connection gives way when a new
    /// client waits and no worker listens. Without that, each waits out keepalive_timeout (60 s
    /// here).
    @Test func keptConnectionsDoNotStarveAPlainServerBlock() throws {
        let server = try ForkliftServer(config: sizedPool("pm = \"static\"\nmax_children = 2\nkeepalive_timeout = \"60s\"",
                                                          extra: Self.echo, logLevel: "debug"))
        defer { server.shutdown() }
        let nginx = try keepAliveNginx(server)
        defer { nginx.stop() }
        try nginx.waitUntilServing()

        var healthy = true
        for round in 1...3 where healthy {
            // Overlapping requests: nginx opens a connection to the pool for each of them.
            let keptPort = nginx.keptPort
            let burst = (0..<8).map { _ in
                InBackground { try HTTPConnection.once(port: keptPort, "GET", "/behaviors/hang?ms=100", timeout: 10) }
            }
            for (index, request) in burst.enumerated() {
                switch request.wait(timeout: 30) {
                case .success(let response)?:
                    healthy = healthy && response.status == 200
                    #expect(response.status == 200, "round \(round), burst request \(index): \(response.status) \(response.text)\n\(nginx.diagnostics(server))")
                case .failure(let error)?:
                    healthy = false
                    Issue.record("round \(round), burst request \(index) through the keep-alive server failed: \(error)\n\(nginx.diagnostics(server))")
                case nil:
                    healthy = false
                    Issue.record("round \(round), burst request \(index) never finished\n\(nginx.diagnostics(server))")
                }
            }
            // Both workers now sit on a connection nginx keeps cached.
            _ = try server.waitForStatus(server.statusSocket, "both workers on kept connections (round \(round))") { page in
                page.processes.filter { $0["state"] as? String == "Keepalive" }.count == 2
            }

            let started = Date()
            let plain = Result { try HTTPConnection.once(port: nginx.plainPort, "GET", "/behaviors", timeout: 10) }
            let took = Date().timeIntervalSince(started)
            switch plain {
            case .success(let response):
                #expect(response.status == 200 && response.text.hasPrefix("behaviors "),
                        "round \(round), the plain server block: \(response.status) \(response.text)\n\(nginx.diagnostics(server))")
            case .failure(let error):
                healthy = false
                Issue.record("round \(round), the plain server block was not answered within 10 s: \(error)\n\(nginx.diagnostics(server))")
            }
            healthy = healthy && took < 2
            #expect(took < 2, "round \(round): the plain server block took \(String(format: "%.2f", took)) s with both workers on kept connections")

            let kept = Result { try HTTPConnection.once(port: nginx.keptPort, "GET", "/behaviors", timeout: 10) }
            #expect((try? kept.get().status) == 200, "round \(round), the keep-alive server block afterwards: \(kept)\n\(nginx.diagnostics(server))")
        }
        #expect(server.log.contains("giving up an idle kept connection: a new client waits and no worker is free"),
                "the kept connections gave way (log_level debug)")
        #expect(!server.log.contains("was killed by"), "no worker crashed")
    }

    /// POSTs of a few KiB through the keep-alive server block from 3 clients (each on one
    /// HTTP/1.1 connection to nginx) while the pool's workers recycle every 7 requests and the
    /// pool is reloaded 5 times: a worker leaving serves a request already sent on its kept
    /// connection and closes only between requests, so none fails.
    @Test func postsThroughKeepAliveSurviveReloadsAndRecycles() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 2\nmax_requests = 7", extra: Self.echo, logLevel: "debug"))
        defer { server.shutdown() }
        let nginx = try keepAliveNginx(server)
        defer { nginx.stop() }
        try nginx.waitUntilServing()

        func recycles() -> Int {
            server.log.components(separatedBy: "\n").filter { $0.contains("retired after serving its requests") }.count
        }
        let load = PostLoad(clients: 3, port: nginx.keptPort)
        defer { _ = load.stop() }
        var progress = true
        progress = progress && load.waitForCompleted(atLeast: 20, timeout: 15)
        for round in 1...5 {
            let recycledBefore = recycles()
            let result = try server.reload()
            #expect(result.status == 0, "reload \(round): \(result.output)")
            let generation = round + 1
            #expect(ForkliftServer.eventually(timeout: 15) { liveGenerations(server.log).contains(generation) },
                    "generation \(generation) went live\n\(server.log)")
            // The new generation's 2 workers serve 25 requests: at least one of them recycles.
            progress = progress && load.waitForCompleted(atLeast: load.completed + 25, timeout: 15)
            #expect(ForkliftServer.eventually(timeout: 10) { recycles() > recycledBefore }, "a worker recycled after reload \(round)")
        }
        let outcome = load.stop()

        #expect(progress, "the clients kept getting answers: \(outcome.completed) requests\n\(nginx.diagnostics(server))")
        #expect(outcome.completed >= 20 + 5 * 25)
        #expect(outcome.failures.isEmpty, """
            \(outcome.failures.count) of \(outcome.completed) POSTs failed: \(outcome.failures.prefix(5).map { $0.description })
            nginx error log:
            \(nginx.errorLog.components(separatedBy: "\n").filter { !$0.contains("[info]") && !$0.contains("[notice]") }.joined(separator: "\n"))
            forklift log in the 150 ms before each failure:
            \(logLines(server.log, before: outcome.failures.map(\.millisecond), window: 150))
            """)
        #expect(liveGenerations(server.log).sorted() == [1, 2, 3, 4, 5, 6], "\(liveGenerations(server.log))")
        #expect(recycles() >= 5, "workers recycled after max_requests: \(recycles())")
        #expect(outcome.workers.count >= 12, "12 workers at least (2 per generation) answered: \(outcome.workers.count)")
        #expect(!server.log.contains("was killed by"), "no worker crashed")
    }
}

/// The lines of `log` ("2026-01-02 03:04:05.678 LEVEL ...") written within `window` ms before
/// (or 20 ms after) any of `moments` (milliseconds since midnight).
private func logLines(_ log: String, before moments: [Int], window: Int) -> String {
    log.components(separatedBy: "\n").filter { line in
        let words = line.split(separator: " ", maxSplits: 2)
        guard words.count > 1 else { return false }
        let parts = words[1].split(whereSeparator: { $0 == ":" || $0 == "." }).compactMap { Int($0) }
        guard parts.count == 4 else { return false }
        let at = ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + parts[3]
        return moments.contains { at >= $0 - window && at <= $0 + 20 }
    }.joined(separator: "\n")
}

/// The generations the master logged as live ("pool www gen N (host pid P) is live").
private func liveGenerations(_ log: String, pool: String = "www") -> [Int] {
    log.components(separatedBy: "\n").compactMap { line in
        guard line.contains(") is live"), let range = line.range(of: "pool \(pool) gen ") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }
}

/// nginx in the server's temporary directory with the two shipped examples side by side on the
/// pool's socket: docs/frontends/nginx-keepalive.conf (`upstream forklift { keepalive 8; }`,
/// `fastcgi_keep_conn on`) on `keptPort`, docs/frontends/nginx.conf (a connection per request)
/// on `plainPort`.
private func keepAliveNginx(_ server: ForkliftServer) throws -> FrontEnd {
    let socket = "unix:\(server.directory)/www.sock"
    return try FrontEnd(.nginx, in: server.directory, ports: 2) { ports in
        try FrontEnd.nginxKeepAliveExample(port: ports[0], forklift: socket) + FrontEnd.nginxExample(port: ports[1], forklift: socket, status: server.directory + "/status.sock")
    }
}

private extension FrontEnd {
    var keptPort: UInt16 { ports[0] }
    var plainPort: UInt16 { ports[1] }

    /// Both server blocks answer (the pool is up behind them).
    func waitUntilServing() throws {
        var last = ""
        let ok = ForkliftServer.eventually(timeout: 15) {
            [keptPort, plainPort].allSatisfy { port in
                do {
                    let response = try HTTPConnection.once(port: port, "GET", "/behaviors", timeout: 5)
                    last = "\(response.status) \(response.text)"
                    return response.status == 200
                } catch {
                    last = "\(error)"
                    return false
                }
            }
        }
        if !ok { throw FastCGIError("nginx does not serve the pool: \(last)\n\(errorLog)") }
    }
}

/// Clients POSTing to /echo through one HTTP/1.1 connection each, back to back until stopped;
/// every answer is checked (status 200, the body echoed whole).
private final class PostLoad: @unchecked Sendable {
    struct Failure: CustomStringConvertible {
        let client: Int
        let request: Int
        /// When the client saw it, in milliseconds since midnight, local time (as the logs).
        let millisecond: Int
        let what: String
        var description: String {
            "client \(client) request \(request) at \(PostLoad.clock(millisecond)): \(what)"
        }
    }
    struct Outcome { let completed: Int; let failures: [Failure]; let workers: Set<String> }

    private let lock = NSLock()
    private var done = 0
    private var failures: [Failure] = []
    private var workers: Set<String> = []
    private var stopping = false
    private var running = 0

    var completed: Int { lock.withLock { done } }

    init(clients: Int, port: UInt16) {
        running = clients
        for client in 0..<clients {
            Thread { [self] in
                let connection = HTTPConnection(port: port, timeout: 15)
                var sent = 0
                while !lock.withLock({ stopping }) {
                    sent += 1
                    let size = Int.random(in: 1000...6000)
                    let body = (0..<size).map { _ in UInt8.random(in: 97...122) }
                    var failure: String?
                    var worker: String?
                    do {
                        let response = try connection.request("POST", "/echo/client\(client)", body: body)
                        let text = response.text
                        worker = text.components(separatedBy: "\n").first { $0.hasPrefix("pid: ") }
                        if response.status != 200 {
                            failure = "status \(response.status): \(text.prefix(120).replacingOccurrences(of: "\r\n", with: " "))"
                        } else if !text.contains("body-length: \(size)\n\n") {
                            failure = "not the body-length sent (\(size) bytes): \(text.prefix(300))"
                        } else if Array(response.body.suffix(size)) != body {
                            failure = "the echoed body differs from the \(size) bytes sent"
                        }
                    } catch {
                        failure = "\(error)"
                        connection.close()
                    }
                    let stamp = Self.stamp()
                    lock.withLock {
                        done += 1
                        if let failure { failures.append(Failure(client: client, request: sent, millisecond: stamp, what: failure)) }
                        if let worker { workers.insert(worker) }
                    }
                }
                connection.close()
                lock.withLock { running -= 1 }
            }.start()
        }
    }

    /// Milliseconds since midnight, local time, as the logs write their times.
    static func stamp() -> Int {
        var now = timeval()
        gettimeofday(&now, nil)
        var seconds = now.tv_sec
        var parts = tm()
        localtime_r(&seconds, &parts)
        return ((Int(parts.tm_hour) * 60 + Int(parts.tm_min)) * 60 + Int(parts.tm_sec)) * 1000 + Int(now.tv_usec / 1000)
    }

    static func clock(_ millisecond: Int) -> String {
        String(format: "%02d:%02d:%02d.%03d", millisecond / 3_600_000, millisecond / 60_000 % 60, millisecond / 1000 % 60, millisecond % 1000)
    }

    /// Waits until `count` requests completed; false if they did not within `timeout`.
    func waitForCompleted(atLeast count: Int, timeout: Double) -> Bool {
        ForkliftServer.eventually(timeout: timeout) { completed >= count }
    }

    func stop() -> Outcome {
        lock.withLock { stopping = true }
        _ = ForkliftServer.eventually(timeout: 30) { lock.withLock { running == 0 } }
        return lock.withLock { Outcome(completed: done, failures: failures, workers: workers) }
    }
}
