import ArgumentParser
import ForkliftClient
import ForkliftConfig
import ForkliftSystem
import Glibc

/// `forklift request`: a curl-like FastCGI client, for trying a pool out, for health checks
/// and for scripts. It sends the params nginx's `fastcgi_params` would for the same request.
struct RequestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Send a FastCGI request and print the response (a curl for FastCGI).",
        discussion: """
            Prints the response body on standard output and the application's FCGI_STDERR on \
            standard error. Exit status: 0 when a response came, 1 when none did (connect, \
            timeout, a broken record, a request the server refused), 22 with --fail and a \
            status of 400 or more (curl's).
            Examples:
              forklift request /hello
              forklift request --connect 127.0.0.1:9000 -X POST -d @body.json -H 'Content-Type: application/json' /echo
              echo hi | forklift request -d @- --keep-conn --repeat 3 -i /echo
            """
    )

    @Argument(help: ArgumentHelp("The path and query, or a URL whose host and port become the server name and port.", valueName: "path"))
    var target: String = "/"

    @Option(help: ArgumentHelp("A unix socket path, host:port or [ipv6]:port (default: the first pool of --conf).", valueName: "address"))
    var connect: String?

    @OptionGroup var options: ConfigurationOptions

    @Option(name: [.customShort("X"), .customLong("method")], help: "The request method (default GET, or POST with a body).")
    var method: String?

    @Option(name: [.customShort("H"), .customLong("header")], help: ArgumentHelp("A request header, 'Name: value' (sent as HTTP_NAME; Content-Type and Content-Length as CONTENT_TYPE and CONTENT_LENGTH).", valueName: "header"))
    var headers: [String] = []

    @Option(name: [.customShort("p"), .customLong("param")], help: ArgumentHelp("A FastCGI param, KEY=VALUE; replaces a default of that name.", valueName: "param"))
    var params: [String] = []

    @Option(name: [.customShort("d"), .customLong("data")], help: ArgumentHelp("The request body: text, @file, or @- for standard input (sent byte for byte).", valueName: "data"))
    var data: String?

    @Flag(name: .customLong("keep-conn"), help: "Set FCGI_KEEP_CONN, and send every --repeat on the same connection.")
    var keepConnection = false

    @Option(help: "Send the request this many times (one connection each, or one in all with --keep-conn).")
    var `repeat`: Int = 1

    @Flag(name: [.customShort("i"), .customLong("include")], help: "Print the response headers before the body.")
    var include = false

    @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Print the params sent, the headers received and the timing on standard error.")
    var verbose = false

    @Flag(help: "Print connect, first byte and total time of each request on standard error.")
    var timing = false

    @Flag(name: [.customShort("f"), .customLong("fail")], help: "Exit 22 when the status is 400 or more.")
    var fail = false

    @Option(help: "Seconds to wait for connecting, and for each read or write.")
    var timeout: Double = 30

    func validate() throws {
        if `repeat` < 1 { throw ValidationError("--repeat must be 1 or more") }
        if !(timeout > 0 && timeout.isFinite) { throw ValidationError("--timeout must be a number of seconds above 0") }
        for header in headers where !header.contains(":") { throw ValidationError("-H \"\(header)\": expected 'Name: value'") }
        for param in params where !param.contains("=") || param.hasPrefix("=") { throw ValidationError("--param \"\(param)\": expected KEY=VALUE") }
    }

    func run() throws {
        let address = try serverAddress()
        let body = try readBody()
        let request = CGIRequest(target: target, method: method ?? (data == nil ? "GET" : "POST"), bodyLength: body.count,
                                 headers: headers.map(Self.header), params: params.map(Self.param))
        if verbose {
            log("* connecting to \(address)")
            for (name, value) in request.pairs { log("> \(name)=\(value)") }
            if !body.isEmpty { log("> (\(body.count) bytes of body)") }
        }
        var connection: FastCGIConnection?
        var worst: Int32 = 0
        for round in 1...`repeat` {
            let started = MonotonicInstant.now()
            let current: FastCGIConnection
            do {
                if let kept = connection, keepConnection { current = kept } else { current = try FastCGIConnection(address, timeout: timeout) }
            } catch {
                throw ForkliftExit(message: "\(error)")
            }
            connection = current
            let connected = MonotonicInstant.now()
            let response: FastCGIResponse
            let firstByte: MonotonicInstant
            do {
                try current.send(FastCGIRecords.request(params: request.pairs, body: body, keepConnection: keepConnection))
                current.waitForData(timeout: timeout)
                firstByte = MonotonicInstant.now()
                response = try current.readResponse()
            } catch {
                throw ForkliftExit(message: "\(address): \(error)\(round > 1 && keepConnection ? " (request \(round) on the kept connection)" : "")")
            }
            let finished = MonotonicInstant.now()
            if !keepConnection { current.close() }
            try show(response)
            if verbose || timing {
                log("* request \(round): connect \(Self.milliseconds(started, connected)), first byte \(Self.milliseconds(connected, firstByte)), total \(Self.milliseconds(started, finished))")
            }
            if response.protocolStatus != 0 {
                throw ForkliftExit(message: "\(address) refused the request: \(Self.protocolStatusName(response.protocolStatus))")
            }
            if fail && response.status >= 400 { worst = 22 }
        }
        if worst != 0 {
            log("forklift request: the server answered with status 400 or more (--fail)")
            throw ExitCode(worst)
        }
    }

    private func show(_ response: FastCGIResponse) throws {
        if !response.stderr.isEmpty { Self.write(2, response.stderr) }
        if verbose {
            for line in response.headerText.split(separator: "\r\n") { log("< \(line)") }
            log("< (app status \(response.appStatus), \(response.body.count) bytes of body)")
        }
        if include { Self.write(1, Array((response.headerText.replacingCRLF() + "\n\n").utf8)) }
        Self.write(1, response.body)
    }

    /// --connect, or the first pool of the configuration.
    private func serverAddress() throws -> FastCGIAddress {
        if let connect {
            guard let address = FastCGIAddress(parsing: connect) else {
                throw ForkliftExit(message: "--connect \"\(connect)\": expected a unix socket path, host:port or [ipv6]:port")
            }
            return address
        }
        let configuration = try loadConfiguration(options.directory)
        guard let pool = configuration.pools.first else { throw ForkliftExit(message: "\(options.directory): no pool to connect to; pass --connect") }
        switch pool.listen {
        case .unix(let path): return .unix(path)
        // A pool listening on every address is reached on loopback.
        case .tcp(let host, let port): return .tcp(host: ["*", "0.0.0.0", ""].contains(host) ? "127.0.0.1" : host == "::" ? "::1" : host, port: port)
        }
    }

    private func readBody() throws -> [UInt8] {
        guard let data else { return [] }
        guard data.hasPrefix("@") else { return Array(data.utf8) }
        let path = String(data.dropFirst())
        let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ForkliftExit(message: "-d @\(path): cannot open: \(String(cString: strerror(errno)))") }
        defer { if fd != 0 { close(fd) } }
        var body: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ForkliftExit(message: "-d @\(path): cannot read: \(String(cString: strerror(errno)))") }
            if n == 0 { return body }
            body += chunk[..<n]
        }
    }

    static func header(_ text: String) -> (String, String) {
        let colon = text.firstIndex(of: ":")!
        return (String(text[..<colon]), String(text[text.index(after: colon)...].drop { $0 == " " }))
    }

    static func param(_ text: String) -> (String, String) {
        let equals = text.firstIndex(of: "=")!
        return (String(text[..<equals]), String(text[text.index(after: equals)...]))
    }

    private func log(_ line: String) { Self.write(2, Array((line + "\n").utf8)) }

    /// Unbuffered, so that the body, the application's stderr and -v lines come in order.
    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return } // a closed pipe: nobody reads any more
            offset += n
        }
    }

    static func milliseconds(_ from: MonotonicInstant, _ to: MonotonicInstant) -> String {
        // Three decimals: a kept request takes tens of microseconds.
        String(Double(Int((from.seconds(until: to) * 1_000_000).rounded())) / 1000) + " ms"
    }

    static func protocolStatusName(_ status: UInt8) -> String {
        switch status {
        case 1: "FCGI_CANT_MPX_CONN"
        case 2: "FCGI_OVERLOADED"
        case 3: "FCGI_UNKNOWN_ROLE"
        default: "protocol status \(status)"
        }
    }
}

private extension String {
    func replacingCRLF() -> String { split(separator: "\r\n", omittingEmptySubsequences: false).joined(separator: "\n") }
}
