import Foundation
import ForkliftTestSupport
import Testing

/// `forklift request`, the curl of FastCGI, against a real pool (Hello and Echo), and against
/// a responder of the test's own that checks what arrives on the wire (FCGI_KEEP_CONN).
@Suite struct RequestCommandTests {
    static func request(_ arguments: [String], input: String? = nil) throws -> Command.Result {
        try Command.run(ForkliftServer.binary, ["request"] + arguments, input: input, errorsApart: true)
    }

    @Test func theFirstPoolOfTheConfigurationIsTheDefault() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock"))
        defer { server.shutdown() }
        let result = try Self.request(["--conf", server.configurationDirectory, "/hello"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output == "Hello, world!\n")
    }

    @Test func aPostBodyFromAFileWithHeadersParamsAndTheStatusLine() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "127.0.0.1:0"))
        defer { server.shutdown() }
        let port = try #require(server.tcpPort(pool: "www"))
        let body = server.directory + "/body.bin"
        let bytes = (0..<70_000).map { UInt8(97 + $0 % 26) } // more than one STDIN record
        try Data(bytes).write(to: URL(fileURLWithPath: body))
        let result = try Self.request(["--connect", "127.0.0.1:\(port)", "-i", "-d", "@" + body, "-H", "Content-Type: application/x-thing",
                                       "-H", "X-Trace-Id: abc", "--param", "REMOTE_ADDR=10.1.2.3", "http://example.org:8080/echo/x?q=1"])
        #expect(result.status == 0, "\(result.errors)")
        let (head, rest) = try #require(Self.split(result.output))
        #expect(head.hasPrefix("Status: 200"), "-i prints the headers first: \(head)")
        for line in ["method: POST", "path: /echo/x", "param: CONTENT_TYPE=application/x-thing", "param: CONTENT_LENGTH=70000",
                     "param: HTTP_X_TRACE_ID=abc", "param: REMOTE_ADDR=10.1.2.3", "param: QUERY_STRING=q=1",
                     "param: REQUEST_URI=/echo/x?q=1", "param: SERVER_NAME=example.org", "param: SERVER_PORT=8080",
                     "param: HTTP_HOST=example.org:8080", "body-length: 70000"] {
            #expect(rest.contains(line + "\n"), "\(line) in \(rest.prefix(1500))")
        }
        #expect(!rest.contains("REMOTE_ADDR=127.0.0.1"), "a --param replaces the default")
        #expect(rest.hasSuffix("body-length: 70000\n\n" + String(decoding: bytes, as: UTF8.self)), "the body byte for byte")
    }

    @Test func aBodyFromStandardInputAndAMethod() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock"))
        defer { server.shutdown() }
        let input = server.directory + "/input"
        try "from stdin\n".write(toFile: input, atomically: true, encoding: .utf8)
        let result = try Self.request(["--connect", server.directory + "/www.sock", "-X", "PUT", "-d", "@-", "/echo"], input: input)
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output.hasPrefix("method: PUT\n"))
        #expect(result.output.hasSuffix("body-length: 11\n\nfrom stdin\n"))
        #expect(!result.output.contains("Status:"), "no headers without -i")
    }

    @Test func failTurnsAStatusOf400OrMoreIntoExit22() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock"))
        defer { server.shutdown() }
        let socket = server.directory + "/www.sock"
        let missing = try Self.request(["--connect", socket, "/nowhere"])
        #expect(missing.status == 0, "an answer is a success without --fail")
        #expect(missing.output.contains("404"))
        let failed = try Self.request(["--connect", socket, "--fail", "/nowhere"])
        #expect(failed.status == 22)
        #expect(failed.errors.contains("status 400 or more"))
        #expect(try Self.request(["--connect", socket, "--fail", "/hello"]).status == 0)
    }

    @Test func noServerIsAFailureNamingTheAddress() throws {
        let directory = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try Self.request(["--connect", directory + "/none.sock", "/"])
        #expect(result.status == 1)
        #expect(result.errors.contains("connect to \(directory)/none.sock: No such file or directory"), "\(result.errors)")
        let bad = try Self.request(["--connect", "nowhere", "/"])
        #expect(bad.status != 0 && bad.errors.contains("--connect \"nowhere\": expected"), "\(bad.errors)")
    }

    /// The responder here counts connections and reads BEGIN_REQUEST's flags itself.
    @Test(arguments: [true, false]) func keepConnSendsEveryRepeatOnOneConnection(keep: Bool) throws {
        let directory = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let responder = try WireResponder(path: directory + "/wire.sock")
        let served = InBackground { try responder.serve(requests: 3) }
        let result = try Self.request(["--connect", directory + "/wire.sock", "--repeat", "3", "--timing"] + (keep ? ["--keep-conn"] : []) + ["/x"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output == "one\none\none\n")
        #expect(result.errors.components(separatedBy: "first byte").count == 4, "timing for each: \(result.errors)")
        let seen = try #require(try served.wait()?.get())
        #expect(seen.connections == (keep ? 1 : 3))
        #expect(seen.keepFlags == Array(repeating: keep, count: 3))
    }

    static func split(_ output: String) -> (String, String)? {
        guard let range = output.range(of: "\n\n") else { return nil }
        return (String(output[..<range.lowerBound]), String(output[range.upperBound...]))
    }
}

/// A minimal responder on a unix socket: answers each request with "one\n" and records
/// how many connections it took and each BEGIN_REQUEST's FCGI_KEEP_CONN flag.
final class WireResponder: @unchecked Sendable {
    let listener: Int32

    init(path: String) throws {
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard bound == 0, listen(listener, 8) == 0 else { throw FastCGIError("cannot listen on \(path)") }
    }

    deinit { close(listener) }

    func serve(requests: Int) throws -> (connections: Int, keepFlags: [Bool]) {
        var connections = 0
        var flags: [Bool] = []
        var connection: Int32 = -1
        defer { if connection >= 0 { close(connection) } }
        while flags.count < requests {
            if connection < 0 {
                connection = accept(listener, nil, nil)
                connections += 1
            }
            guard let keep = try readRequest(connection) else {
                close(connection) // the client closed it: the next request comes on a new one
                connection = -1
                continue
            }
            flags.append(keep)
            let out = FastCGIRecords.stream(.stdout, Array("Content-Type: text/plain\r\n\r\none\n".utf8)) + FastCGIRecords.record(.endRequest, [0, 0, 0, 0, 0, 0, 0, 0])
            try FastCGIClient.sendAll(connection, out)
            if !keep {
                close(connection)
                connection = -1
            }
        }
        return (connections, flags)
    }

    /// BEGIN_REQUEST's keep flag, after reading up to the empty STDIN record; nil at EOF.
    private func readRequest(_ fd: Int32) throws -> Bool? {
        var keep: Bool?
        while true {
            guard let header = read(fd, 8) else { return nil }
            let length = Int(header[4]) << 8 | Int(header[5])
            guard let content = read(fd, length + Int(header[6])) else { return nil }
            if header[1] == FastCGIRecords.RecordType.beginRequest.rawValue { keep = content[2] & 1 == 1 }
            if header[1] == FastCGIRecords.RecordType.stdin.rawValue && length == 0 { return keep }
        }
    }

    private func read(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return nil }
            got += n
        }
        return buffer
    }
}
