import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The example configurations shipped in docs/frontends, each run by its web server's Debian
/// package in front of a real Forklift: Hello, Echo with and without a body, a path Forklift
/// has no route for, and the routing variables each front end sends (docs/frontends.md).
@Suite struct FrontEndTests {
    @Test func nginx() throws {
        let server = try ForkliftServer(config: frontEndPool(listen: "{dir}/www.sock"))
        defer { server.shutdown() }
        let nginx = try FrontEnd(.nginx, in: server.directory) { ports in
            try FrontEnd.nginxExample(port: ports[0], forklift: "unix:\(server.directory)/www.sock", status: server.directory + "/status.sock")
        }
        defer { nginx.stop() }

        try checkServing(nginx, server, sends: [
            "SCRIPT_NAME": "/echo/a b/c", "DOCUMENT_URI": "/echo/a b/c", "PATH_INFO": nil, "SCRIPT_FILENAME": nil,
            "CONTENT_LENGTH": "",
        ])
        // /metrics, what docs/examples/prometheus.yml scrapes: OpenMetrics that Prometheus's own
        // parser accepts.
        let curl = try #require(Command.find("curl"))
        let metrics = try Command.run(curl, ["-sS", "-i", "http://127.0.0.1:\(nginx.port)/metrics"], errorsApart: true)
        let (head, body) = try #require(metrics.output.range(of: "\r\n\r\n").map { (metrics.output[..<$0.lowerBound], String(metrics.output[$0.upperBound...])) })
        #expect(head.hasPrefix("HTTP/1.1 200") && head.contains("Content-Type: application/openmetrics-text"), "\(head)")
        #expect(body.contains("forklift_active_processes{pool=\"www\"}"))
        try expectValidOpenMetrics(body, in: server.directory)
    }

    /// docs/frontends/nginx-keepalive.conf: nginx keeps its connections to the pool open
    /// between requests (FCGI_KEEP_CONN), which the status page shows as a worker in state
    /// Keepalive, and every request on them is still served whole.
    @Test func nginxWithKeptConnections() throws {
        let server = try ForkliftServer(config: frontEndPool(listen: "127.0.0.1:0"))
        defer { server.shutdown() }
        let forklift = try #require(server.tcpPort(pool: "www"))
        let nginx = try FrontEnd(.nginx, in: server.directory) { ports in
            try FrontEnd.nginxKeepAliveExample(port: ports[0], forklift: "127.0.0.1:\(forklift)")
        }
        defer { nginx.stop() }

        try checkServing(nginx, server, sends: [
            "SCRIPT_NAME": "/echo/a b/c", "DOCUMENT_URI": "/echo/a b/c", "PATH_INFO": nil, "SCRIPT_FILENAME": nil,
        ])
        _ = try server.waitForStatus(server.statusSocket, "a worker on a kept connection") { page in
            page.processes.contains { $0["state"] as? String == "Keepalive" }
        }
        // One client connection, requests back to back: each one on a connection nginx kept.
        let client = HTTPConnection(port: nginx.port, timeout: 10)
        defer { client.close() }
        for index in 1...20 {
            let body = Array("request \(index)".utf8)
            let response = try client.request("POST", "/echo/kept", body: body)
            #expect(response.status == 200 && response.text.hasSuffix("body-length: \(body.count)\n\nrequest \(index)"),
                    "request \(index): \(response.status) \(response.text)\n\(nginx.diagnostics(server))")
        }
        #expect(!nginx.errorLog.contains("[error]"), "\(nginx.errorLog)")
    }

    /// docs/frontends/apache-forklift.conf, both ways: `ProxyPass` to the unix socket, and to
    /// TCP with `-D FORKLIFT_TCP`.
    @Test(arguments: Transport.allCases) func apache(transport: Transport) throws {
        let server = try ForkliftServer(config: frontEndPool(listen: transport.listen))
        defer { server.shutdown() }
        let forklift = try transport.address(server)
        let apache = try FrontEnd(.apache, in: server.directory, defines: transport == .tcp ? ["FORKLIFT_TCP"] : []) { ports in
            try FrontEnd.example("apache-forklift.conf", replacing: [
                "<VirtualHost *:80>": "<VirtualHost 127.0.0.1:\(ports[0])>",
                "/run/forklift/www.sock": "\(server.directory)/www.sock",
                "127.0.0.1:9000": transport == .tcp ? "\(forklift)" : "127.0.0.1:9",
            ])
        }
        defer { apache.stop() }

        // mod_proxy_fcgi's SCRIPT_FILENAME is "proxy:fcgi://" + the ProxyPass target's host and
        // the path still percent-encoded; SCRIPT_NAME the whole decoded path, no PATH_INFO. A
        // chunked body is streamed, without CONTENT_LENGTH.
        let target = transport == .tcp ? "\(forklift)" : "localhost"
        try checkServing(apache, server, sends: [
            "SCRIPT_NAME": "/echo/a b/c", "PATH_INFO": nil, "DOCUMENT_URI": nil,
            "SCRIPT_FILENAME": "proxy:fcgi://\(target)/echo/a%20b/c", "CONTENT_LENGTH": nil,
        ], chunkedLength: false)
    }

    @Test func lighttpd() throws {
        let server = try ForkliftServer(config: frontEndPool(listen: "{dir}/www.sock"))
        defer { server.shutdown() }
        let lighttpd = try FrontEnd(.lighttpd, in: server.directory) { _ in
            try FrontEnd.example("lighttpd-forklift.conf", replacing: ["/run/forklift/www.sock": "\(server.directory)/www.sock"])
        }
        defer { lighttpd.stop() }

        // fix-root-scriptname: SCRIPT_NAME empty, the whole decoded path in PATH_INFO.
        try checkServing(lighttpd, server, sends: [
            "SCRIPT_NAME": "", "PATH_INFO": "/echo/a b/c", "DOCUMENT_URI": nil,
            "SCRIPT_FILENAME": lighttpd.directory + "/htdocs/", "CONTENT_LENGTH": "0",
        ])
    }
}

/// Hello, Echo and the status page (answered outside the workers, on {dir}/status.sock).
/// The unix sockets' group is www-data, as docs/frontends.md says: Debian's front ends serve
/// as www-data, and a socket is 0660. (Here Apache does; nginx and lighttpd run as root.)
func frontEndPool(listen: String) -> String {
    poolConfig(listen: listen, pool: "status_path = \"/status\"\nstatus_listen = \"{dir}/status.sock\"\nlisten_group = \"www-data\"")
}

extension FrontEnd {
    /// docs/frontends/nginx.conf listening on `port`, passing to `forklift` (unix:PATH or HOST:PORT).
    /// `status`: the pool's status_listen socket, for /metrics.
    static func nginxExample(port: UInt16, forklift: String, status: String) throws -> String {
        try example("nginx.conf", replacing: ["listen 80;": "listen 127.0.0.1:\(port);", "unix:/run/forklift/www.sock": forklift,
                                              "unix:/run/forklift/www-status.sock": "unix:" + status])
    }

    /// docs/frontends/nginx-keepalive.conf listening on `port`, its upstream `forklift`.
    static func nginxKeepAliveExample(port: UInt16, forklift: String) throws -> String {
        try example("nginx-keepalive.conf", replacing: ["listen 80;": "listen 127.0.0.1:\(port);", "127.0.0.1:9000": forklift])
    }
}

/// The requests every front end must serve, through `frontEnd` to `server`'s pool; `sends` are
/// the routing variables it must send for GET /echo/a%20b/c?x=1&y=%20z (nil: not at all).
/// `chunkedLength`: whether it sends CONTENT_LENGTH for a chunked body (it buffers the body
/// first) or not (it streams the body: Forklift reads it to the end of FCGI_STDIN).
func checkServing(_ frontEnd: FrontEnd, _ server: ForkliftServer, sends: [String: String?], chunkedLength: Bool = true,
                  sourceLocation: SourceLocation = #_sourceLocation) throws {
    let port = frontEnd.port
    func fail(_ what: String) -> Comment { "\(frontEnd.server): \(what)\n\(frontEnd.diagnostics(server))" }

    // Hello, with curl as the client.
    let curl = try #require(Command.find("curl"), "curl is needed")
    let hello = try Command.run(curl, ["-sS", "-i", "http://127.0.0.1:\(port)/hello"])
    #expect(hello.output.hasPrefix("HTTP/1.1 200 OK\r\n"), fail("GET /hello: \(hello.output)"), sourceLocation: sourceLocation)
    #expect(hello.output.contains("Content-Type: text/plain; charset=utf-8\r\n"), fail("GET /hello: \(hello.output)"), sourceLocation: sourceLocation)
    #expect(hello.output.hasSuffix("\r\n\r\nHello, world!\n"), fail("GET /hello: \(hello.output)"), sourceLocation: sourceLocation)

    // Forklift answers what no plugin is routed for, routes matching whole segments.
    for path in ["/helloworld", "/"] {
        let missing = try HTTPConnection.once(port: port, "GET", path, timeout: 10)
        #expect(missing.status == 404 && missing.text == "404 Not Found: no plugin of pool www is routed for \(path)\n",
                fail("GET \(path): \(missing.status) \(missing.text)"), sourceLocation: sourceLocation)
    }

    // The routing variables, for a path with an escape and a query string.
    let get = try HTTPConnection.once(port: port, "GET", "/echo/a%20b/c?x=1&y=%20z", timeout: 10)
    #expect(get.status == 200, fail("GET /echo/a%20b/c: \(get.status) \(get.text)"), sourceLocation: sourceLocation)
    let echoed = EchoReport(get.text)
    #expect(echoed.method == "GET" && echoed.path == "/echo/a b/c", fail("GET /echo/a%20b/c: \(get.text)"), sourceLocation: sourceLocation)
    var expected: [String: String?] = ["REQUEST_METHOD": "GET", "QUERY_STRING": "x=1&y=%20z", "REQUEST_URI": "/echo/a%20b/c?x=1&y=%20z"]
    expected.merge(sends) { $1 }
    for (name, value) in expected.sorted(by: { $0.key < $1.key }) {
        #expect(echoed.params[name] == value, fail("\(name) for GET /echo/a%20b/c?x=1&y=%20z: \(echoed.params[name].map { "\"\($0)\"" } ?? "not sent"), expected \(value.map { "\"\($0)\"" } ?? "not sent")"),
                sourceLocation: sourceLocation)
    }

    // Dot segments: the front end normalises the path it sends; REQUEST_URI keeps the raw
    // one, which would route to Hello.
    let dots = EchoReport(try HTTPConnection.once(port: port, "GET", "/hello/../echo/x", timeout: 10).text)
    #expect(dots.path == "/echo/x" && dots.params["REQUEST_URI"] == "/hello/../echo/x", fail("GET /hello/../echo/x: \(dots.text)"),
            sourceLocation: sourceLocation)

    // POST bodies of every byte value, larger than a FastCGI record and than the front ends'
    // in-memory buffers; with a Content-Length and chunked.
    let body = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
    for chunked in [false, true] {
        let what = "POST /echo/upload\(chunked ? " (chunked)" : "")"
        let post = try HTTPConnection.once(port: port, "POST", "/echo/upload?n=1", body: body, chunked: chunked, timeout: 30)
        let report = EchoReport(post.text)
        #expect(post.status == 200 && report.method == "POST" && report.path == "/echo/upload", fail("\(what): \(post.status) \(post.text.prefix(2000))"),
                sourceLocation: sourceLocation)
        #expect(report.params["REQUEST_METHOD"] == "POST" && report.params["QUERY_STRING"] == "n=1", fail("\(what): \(report.text)"), sourceLocation: sourceLocation)
        #expect(report.params["CONTENT_LENGTH"] == (chunked && !chunkedLength ? nil : "\(body.count)"), fail("\(what): CONTENT_LENGTH \(report.params["CONTENT_LENGTH"] ?? "not sent")"),
                sourceLocation: sourceLocation)
        #expect(report.params["CONTENT_TYPE"] == "application/octet-stream", fail("\(what): \(report.text)"), sourceLocation: sourceLocation)
        #expect(report.bodyLength == body.count && Array(post.body.suffix(body.count)) == body,
                fail("\(what): the echoed body (\(report.bodyLength.map(String.init) ?? "no") body-length) differs from the \(body.count) bytes sent"),
                sourceLocation: sourceLocation)
    }
}

/// What Echo answers: its head lines ("method: GET", "param: NAME=VALUE"...), then the body.
struct EchoReport {
    let text: String
    let method: String?
    let path: String?
    let params: [String: String]
    let bodyLength: Int?

    init(_ text: String) {
        self.text = text
        let head = text.components(separatedBy: "\n\n").first ?? ""
        var method: String?, path: String?, bodyLength: Int?
        var params: [String: String] = [:]
        for line in head.components(separatedBy: "\n") {
            if line.hasPrefix("method: ") { method = String(line.dropFirst(8)) }
            if line.hasPrefix("path: ") { path = String(line.dropFirst(6)) }
            if line.hasPrefix("body-length: ") { bodyLength = Int(line.dropFirst(13)) }
            if line.hasPrefix("param: "), let equals = line.firstIndex(of: "=") {
                params[String(line[line.index(line.startIndex, offsetBy: 7)..<equals])] = String(line[line.index(after: equals)...])
            }
        }
        (self.method, self.path, self.params, self.bodyLength) = (method, path, params, bodyLength)
    }
}
