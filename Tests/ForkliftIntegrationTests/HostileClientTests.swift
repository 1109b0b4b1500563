import Foundation
import ForkliftTestSupport
import Testing

/// Clients that stall, send nonsense or crafted records: each costs at most its own
/// connection, is logged, and the pool keeps serving.
@Suite(.serialized) struct HostileClientTests {
    static let pool = "max_children = 2\nrequest_read_timeout = \"1s\"\nmax_params_size = \"8k\""

    func send(_ path: String, _ bytes: [UInt8]) throws -> Int32 {
        let fd = try rawConnection(path)
        try FastCGIClient.sendAll(fd, bytes)
        return fd
    }

    func begin(role: UInt16 = 1) -> [UInt8] {
        FastCGIClient.record(.beginRequest, [UInt8(role >> 8), UInt8(role & 0xFF), 0, 0, 0, 0, 0, 0])
    }

    /// BEGIN_REQUEST and the params of a GET (or of a POST of `bodyLength` bytes), ended; no STDIN.
    func head(_ path: String, query: String = "", postOf bodyLength: Int? = nil) -> [UInt8] {
        let params = FastCGIClient.cgiParams(method: bodyLength == nil ? "GET" : "POST", path: path, query: query, bodyLength: bodyLength ?? 0).flatMap { FastCGIClient.length($0.0.utf8.count) + FastCGIClient.length($0.1.utf8.count) + Array($0.0.utf8) + Array($0.1.utf8) }
        return begin() + FastCGIClient.stream(.params, params)
    }

    /// max_children silent clients and as many stopping half-way through their params: a real
    /// request still succeeds within request_read_timeout and a second; a stop exits 0 at once.
    @Test func silentAndHalfSentClientsCostTheirReadTimeoutOnly() throws {
        let server = try ForkliftServer(config: sizedPool(Self.pool))
        defer { server.shutdown() }
        let path = server.directory + "/www.sock"
        var stalled: [Int32] = []
        defer { for fd in stalled { close(fd) } }
        for _ in 0..<2 { stalled.append(try rawConnection(path)) }
        let half = Array((begin() + FastCGIClient.record(.params, Array(FastCGIClient.length(11) + FastCGIClient.length(6) + Array("SCRIPT_NAME".utf8)))).dropLast(3))
        for _ in 0..<2 { stalled.append(try send(path, half)) }
        let started = Date()
        let response = try FastCGIClient.get(server.www, "/behaviors", timeout: 10)
        #expect(response.status == 200)
        #expect(Date().timeIntervalSince(started) < 1 * 2 + 1, "within two read timeouts (two workers, four stalled clients) and a second")
        try server.waitForLog("within request_read_timeout (1.0 s)")
        // Stalled clients again, then a stop: no die_timeout, exit 0.
        for _ in 0..<2 { stalled.append(try send(path, half)) }
        _ = try server.waitForStatus(server.statusSocket, "both reading") { $0.processes.filter { $0["state"] as? String == "Reading headers" }.count == 2 }
        let stopping = Date()
        server.signal(SIGTERM)
        #expect(server.waitForExit(timeout: 10) == 0)
        #expect(Date().timeIntervalSince(stopping) < 2.5, "a stop cuts half-sent requests after a second")
    }

    /// The record that aborts libfcgi 2.4.2 (a PARAMS name length of 0x7ffffffe), 20 times at
    /// once: refused before libfcgi reads it, no worker dies, service resumes at once.
    @Test func twentyCraftedParamsRecordsCostNothingButThemselves() throws {
        let server = try ForkliftServer(config: sizedPool(Self.pool))
        defer { server.shutdown() }
        let path = server.directory + "/www.sock"
        let workers = server.workerPIDs()
        let crafted = begin() + [1, 4, 0, 1, 0x7F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFE, 0x01]
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for _ in 0..<20 { fds.append(try send(path, crafted)) }
        let started = Date()
        #expect(try FastCGIClient.get(server.www, "/behaviors", timeout: 10).status == 200)
        #expect(Date().timeIntervalSince(started) < 1, "served right after the crafted ones are refused")
        try server.waitForLog("its params exceed max_params_size (8192 bytes)")
        #expect(server.workerPIDs() == workers, "no worker died")
        #expect(!server.log.contains("killed by"))
    }

    /// GET_VALUES naming FCGI_MPXS_CONNS four times smashes libfcgi's stack; answered by the
    /// worker instead, correctly, with zeroed padding.
    @Test func getValuesIsAnsweredCorrectlyWithNoStrayBytes() throws {
        let server = try ForkliftServer(config: sizedPool(Self.pool))
        defer { server.shutdown() }
        let names = (0..<4).flatMap { _ in FastCGIClient.length(15) + FastCGIClient.length(0) + Array("FCGI_MPXS_CONNS".utf8) }
            + FastCGIClient.length(14) + FastCGIClient.length(0) + Array("FCGI_MAX_CONNS".utf8)
        let fd = try send(server.directory + "/www.sock", [1, 9, 0, 0, UInt8(names.count >> 8), UInt8(names.count & 0xFF), 0, 0] + names)
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 8)
        #expect(recv(fd, &header, 8, Int32(MSG_WAITALL)) == 8)
        #expect(header[1] == 10 && header[2] == 0 && header[3] == 0, "FCGI_GET_VALUES_RESULT for the null request: \(header)")
        let length = Int(header[4]) << 8 | Int(header[5]), padding = Int(header[6])
        var content = [UInt8](repeating: 0xAA, count: length + padding)
        #expect(recv(fd, &content, content.count, Int32(MSG_WAITALL)) == content.count)
        // Each name once, in the order asked: FCGI_MPXS_CONNS (four times asked), FCGI_MAX_CONNS.
        let expected: [UInt8] = [15, 1] + Array("FCGI_MPXS_CONNS".utf8) + Array("0".utf8) + [14, 1] + Array("FCGI_MAX_CONNS".utf8) + Array("1".utf8)
        #expect(Array(content.prefix(length)) == expected)
        #expect(content.dropFirst(length).allSatisfy { $0 == 0 }, "padding is zeros")
        #expect((length + padding) % 8 == 0)
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
    }

    @Test func anUnknownRoleGetsEndRequestWithUnknownRole() throws {
        let server = try ForkliftServer(config: sizedPool(Self.pool))
        defer { server.shutdown() }
        let fd = try send(server.directory + "/www.sock", begin(role: 9))
        defer { close(fd) }
        var record = [UInt8](repeating: 0, count: 16)
        #expect(recv(fd, &record, 16, Int32(MSG_WAITALL)) == 16)
        #expect(record[1] == 3, "FCGI_END_REQUEST")
        #expect(record[8 + 4] == 3, "protocolStatus FCGI_UNKNOWN_ROLE")
    }

    /// Oversized params, garbage, truncated records: each is logged and closed; the master
    /// and the workers live on and the next request succeeds.
    @Test func nonsenseIsRefusedAndNothingElseSuffers() throws {
        let server = try ForkliftServer(config: sizedPool(Self.pool))
        defer { server.shutdown() }
        let path = server.directory + "/www.sock"
        let workers = server.workerPIDs()
        var generator = SystemRandomNumberGenerator()
        let big = FastCGIClient.cgiParams(path: "/behaviors", extra: [("HTTP_COOKIE", String(repeating: "c", count: 9000))])
        let bigParams = big.flatMap { FastCGIClient.length($0.0.utf8.count) + FastCGIClient.length($0.1.utf8.count) + Array($0.0.utf8) + Array($0.1.utf8) }
        let inputs: [[UInt8]] = [
            begin() + FastCGIClient.stream(.params, bigParams),
            (0..<512).map { _ in UInt8.random(in: 0...255, using: &generator) },
            [9, 9, 9, 9, 9, 9, 9, 9],
            Array(begin().prefix(5)),
            begin() + FastCGIClient.record(.stdin, [1, 2, 3]),
        ]
        for input in inputs {
            let fd = try send(path, input)
            shutdown(fd, Int32(SHUT_WR))
            var byte: UInt8 = 0
            _ = recv(fd, &byte, 1, 0) // the server closes
            close(fd)
        }
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
        try server.waitForLog("its params exceed max_params_size (8192 bytes)")
        try server.waitForLog("closed a connection from a unix socket client: FastCGI version")
        #expect(server.workerPIDs() == workers && server.process.isRunning)
    }

    @Test func aBodyOverMaxBodySizeGets413BeforeThePluginRuns() throws {
        let server = try ForkliftServer(config: sizedPool(Self.pool + "\nmax_body_size = \"1k\"", extra: """
            [pool.www.plugin.echo]
            path = "{build}/libEcho.so"
            route = "/echo"
            """))
        defer { server.shutdown() }
        let body = [UInt8](repeating: 7, count: 2048)
        let response = try FastCGIClient.request(server.www, params: FastCGIClient.cgiParams(method: "POST", path: "/echo", bodyLength: body.count), body: body)
        #expect(response.status == 413)
        #expect(response.bodyText.contains("at most 1024 bytes"))
        try server.waitForLog("refused a body of 2048 bytes for /echo: above max_body_size (1024 bytes)")
        let small = try FastCGIClient.request(server.www, params: FastCGIClient.cgiParams(method: "POST", path: "/echo", bodyLength: 10), body: Array(body.prefix(10)))
        #expect(small.status == 200)
    }

    static let echoPool = sizedPool(pool + "\nmax_body_size = \"1k\"", extra: """
        [pool.www.plugin.echo]
        path = "{build}/libEcho.so"
        route = "/echo"
        """)

    /// A body longer than its CONTENT_LENGTH said, or one without CONTENT_LENGTH, stops at
    /// max_body_size as it is read: 413, and the worker serves on.
    @Test(arguments: [10, 0])
    func aBodyThatTurnsOutOverMaxBodySizeGets413(declared: Int) throws {
        let server = try ForkliftServer(config: Self.echoPool)
        defer { server.shutdown() }
        let workers = server.workerPIDs()
        let body = [UInt8](repeating: 7, count: 4096)
        var params = FastCGIClient.cgiParams(method: "POST", path: "/echo", bodyLength: declared)
        if declared == 0 { params.append(("CONTENT_TYPE", "application/octet-stream")) }
        let response = try FastCGIClient.request(server.www, params: params, body: body)
        #expect(response.status == 413, "\(response.status) \(response.bodyText)")
        try server.waitForLog("refused the body of /echo after 1024 bytes: above max_body_size")
        #expect(try FastCGIClient.request(server.www, params: FastCGIClient.cgiParams(method: "POST", path: "/echo", bodyLength: 10), body: Array(body.prefix(10))).status == 200)
        #expect(server.workerPIDs() == workers)
    }

    /// An upload the client half-closed before its end is broken off, not too large.
    @Test func aHalfClosedUploadIsNotReportedTooLarge() throws {
        let server = try ForkliftServer(config: Self.echoPool)
        defer { server.shutdown() }
        let fd = try FastCGIClient.connect(server.www, timeout: 10)
        defer { close(fd) }
        try FastCGIClient.sendAll(fd, head("/echo", postOf: 1000) + FastCGIClient.record(.stdin, [UInt8](repeating: 1, count: 500)))
        shutdown(fd, Int32(SHUT_WR))
        let response = try? FastCGIClient.readResponse(fd)
        #expect(response?.status != 413, "\(response?.bodyText ?? "no response")")
        try server.waitForLog("plugin echo failed on /echo: the client broke the request body off")
        #expect(!server.log.contains("max_body_size"), "\(server.log)")
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
    }

    /// An upload that stops coming half-way is given up after request_read_timeout (each read
    /// of the body waits that long at most), and the worker serves the next client.
    @Test func anUploadThatStallsIsGivenUpAfterTheReadTimeout() throws {
        let server = try ForkliftServer(config: Self.echoPool)
        defer { server.shutdown() }
        let fd = try FastCGIClient.connect(server.www, timeout: 10)
        defer { close(fd) }
        let started = Date()
        try FastCGIClient.sendAll(fd, head("/echo", postOf: 1000) + FastCGIClient.record(.stdin, [UInt8](repeating: 1, count: 500)))
        try server.waitForLog("plugin echo failed on /echo: the client broke the request body off")
        #expect(Date().timeIntervalSince(started) >= 0.9, "after request_read_timeout (1 s)")
        #expect(try FastCGIClient.request(server.www, params: FastCGIClient.cgiParams(method: "POST", path: "/echo", bodyLength: 10), body: [UInt8](repeating: 2, count: 10)).status == 200)
    }

    /// A handler that fails after writing part of the body: the client never gets an
    /// END_REQUEST (nginx reports the response as cut off) instead of a complete-looking one.
    @Test func aFailureAfterTheHeadersAbortsTheConnection() throws {
        let server = try ForkliftServer(config: sizedPool(Self.pool))
        defer { server.shutdown() }
        #expect(throws: (any Error).self, "no END_REQUEST") { try FastCGIClient.get(server.www, "/behaviors/throw-late", timeout: 5) }
        try server.waitForLog("the connection is aborted")
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
    }

    /// A client that keeps its end open after the response (or trickles bytes) no longer holds
    /// the worker: libfcgi's lingering close reads only what has arrived.
    @Test func aClientThatKeepsItsEndOpenDoesNotHoldTheWorker() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let fd = try FastCGIClient.connect(server.www, timeout: 10)
        defer { close(fd) }
        try FastCGIClient.sendAll(fd, head("/behaviors") + FastCGIClient.stream(.stdin, []))
        _ = try FastCGIClient.readResponse(fd) // and then neither reads nor closes
        let started = Date()
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
        #expect(Date().timeIntervalSince(started) < 0.5, "not 2 s later")
    }

    /// A GET_VALUES and a request in one write: the worker reads both with its first read
    /// (`RequestStart`), answers the management record itself and hands libfcgi the request
    /// from what it read, starting after the record.
    @Test func aGetValuesAndARequestInOneWriteAreBothAnswered() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let asked: [UInt8] = [14, 0] + Array("FCGI_MAX_CONNS".utf8) // 16 bytes: no padding
        let getValues: [UInt8] = [1, 9, 0, 0, 0, UInt8(asked.count), 0, 0] + asked
        let fd = try send(server.directory + "/www.sock", getValues + head("/behaviors/pid") + FastCGIClient.record(.stdin, []))
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var header = [UInt8](repeating: 0, count: 8)
        #expect(recv(fd, &header, 8, Int32(MSG_WAITALL)) == 8 && header[1] == 10, "FCGI_GET_VALUES_RESULT first: \(header)")
        var answer = [UInt8](repeating: 0, count: (Int(header[4]) << 8 | Int(header[5])) + Int(header[6]))
        #expect(recv(fd, &answer, answer.count, Int32(MSG_WAITALL)) == answer.count)
        #expect(answer.starts(with: [14, 1] + Array("FCGI_MAX_CONNS1".utf8)))
        let response = try FastCGIClient.readResponse(fd)
        #expect(response.status == 200 && response.bodyText.hasPrefix("behaviors "))
    }

    /// A client that closes its connection half-way through its params: the worker sees the
    /// end at once and takes the next client, rather than looking at the same half request
    /// again and again (the socket stays readable at its end) until request_read_timeout.
    @Test func aClientClosingHalfWayThroughItsParamsIsLetGoAtOnce() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nrequest_read_timeout = \"20s\""))
        defer { server.shutdown() }
        let half = Array((begin() + FastCGIClient.record(.params, Array(FastCGIClient.length(11) + FastCGIClient.length(6) + Array("SCRIPT_NAME".utf8)))).dropLast(3))
        let fd = try send(server.directory + "/www.sock", half)
        _ = try server.waitForStatus(server.statusSocket, "reading it") { $0.processes.contains { $0["state"] as? String == "Reading headers" } }
        close(fd)
        let started = Date()
        #expect(try FastCGIClient.get(server.www, "/behaviors", timeout: 15).status == 200)
        #expect(Date().timeIntervalSince(started) < 5, "not after request_read_timeout (20 s)")
    }

    /// A request without a body whose empty STDIN comes only after its params (cgi-fcgi sends
    /// it once it has read its own standard input): its response is flushed, and the worker
    /// waits for that record before it ends the request and closes, so the client's write of
    /// it cannot fail with EPIPE (nor, on TCP, reset the connection under the response).
    @Test func anEmptyStdinSentAfterTheResponseBeganIsWaitedFor() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1"))
        defer { server.shutdown() }
        let fd = try FastCGIClient.connect(server.www, timeout: 10)
        defer { close(fd) }
        try FastCGIClient.sendAll(fd, head("/behaviors")) // no STDIN yet
        var received: [UInt8] = []
        func types() -> [UInt8] { // the record types received whole so far
            var offset = 0, found: [UInt8] = []
            while received.count - offset >= 8 {
                let length = 8 + (Int(received[offset + 4]) << 8 | Int(received[offset + 5])) + Int(received[offset + 6])
                guard received.count - offset >= length else { break }
                found.append(received[offset + 1])
                offset += length
            }
            return found
        }
        func receive() -> Int {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = recv(fd, &chunk, chunk.count, 0)
            if count > 0 { received += chunk.prefix(count) }
            return count
        }
        // The response's STDOUT comes, its END_REQUEST does not: the request is not over.
        while !types().contains(6) {
            guard receive() > 0 else { Issue.record("closed before the response's STDOUT came"); return }
        }
        #expect(!types().contains(3), "no END_REQUEST before the client has sent all of its request")
        try FastCGIClient.sendAll(fd, FastCGIClient.stream(.stdin, [])) // would be EPIPE after a close
        while !types().contains(3) { guard receive() > 0 else { break } }
        #expect(types().contains(3), "END_REQUEST once the stdin ended")
        #expect(receive() == 0, "then the connection is closed")
    }

    /// A client that stops reading a large response is given up after request_write_timeout.
    @Test func aClientThatStopsReadingIsGivenUp() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nrequest_write_timeout = \"1s\""))
        defer { server.shutdown() }
        let fd = try FastCGIClient.connect(server.www, timeout: 10)
        defer { close(fd) }
        try FastCGIClient.sendAll(fd, head("/behaviors/big", query: "mb=32") + FastCGIClient.stream(.stdin, []))
        // Never read: the worker's writes stall, then time out.
        _ = try server.waitForStatus(server.statusSocket, timeout: 10, "the worker free again") { $0.processes.first?["state"] as? String == "Idle" && $0.int("accepted conn") >= 1 }
        #expect(try FastCGIClient.get(server.www, "/behaviors").status == 200)
    }

    /// A response cut short by request_write_timeout whose handler let the failed write pass
    /// and returned normally: the client that reads again finds what got through, then the
    /// connection's end, never an end of stdout or END_REQUEST that would make it whole.
    @Test func aResponseCutShortIsNeverEndedAsComplete() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nrequest_write_timeout = \"1s\""))
        defer { server.shutdown() }
        let fd = try FastCGIClient.connect(server.www, timeout: 10)
        defer { close(fd) }
        try FastCGIClient.sendAll(fd, head("/behaviors/big-unchecked", query: "mb=32") + FastCGIClient.stream(.stdin, []))
        // Not read until the handler is done (its writes timed out): libfcgi would now try to
        // end the response, for as long as the write timeout again.
        _ = try server.waitForStatus(server.statusSocket, timeout: 20, "the handler done") {
            ["Finishing", "Idle"].contains($0.processes.first?["state"] as? String) && $0.int("accepted conn") >= 1
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { break }
            received += chunk.prefix(count)
        }
        #expect(received.count > 0 && received.count < 32 << 20, "what got through before the timeout: \(received.count) bytes")
        func contains(_ pattern: [UInt8]) -> Bool {
            received.count >= pattern.count && (0...(received.count - pattern.count)).contains { received[$0..<($0 + pattern.count)].elementsEqual(pattern) }
        }
        #expect(!contains([1, 3, 0, 1, 0, 8, 0, 0]), "no END_REQUEST")
        #expect(!contains([1, 6, 0, 1, 0, 0, 0, 0]), "no end of stdout")
    }
}
