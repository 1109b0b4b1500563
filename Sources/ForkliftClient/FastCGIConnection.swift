import Glibc

/// One connection to a FastCGI responder, for one request or, with FCGI_KEEP_CONN, several
/// in turn (as nginx's upstream keepalive uses it). Every record read is checked.
public final class FastCGIConnection: @unchecked Sendable {
    public private(set) var fd: Int32
    public let address: FastCGIAddress

    public init(_ address: FastCGIAddress, timeout: Double = 30) throws(FastCGIError) {
        self.address = address
        fd = try address.connect(timeout: timeout)
    }

    /// Sends a request and reads its whole response. With `keepConnection` the server leaves
    /// the connection open for the next one.
    public func request(params: [(String, String)], body: [UInt8] = [], keepConnection: Bool = false) throws(FastCGIError) -> FastCGIResponse {
        try send(FastCGIRecords.request(params: params, body: body, keepConnection: keepConnection))
        return try readResponse()
    }

    /// A GET with the usual CGI params on a kept connection.
    public func get(_ path: String, query: String = "") throws(FastCGIError) -> FastCGIResponse {
        try request(params: FastCGIClient.cgiParams(path: path, query: query), keepConnection: true)
    }

    public func send(_ bytes: [UInt8]) throws(FastCGIError) { try SocketIO.sendAll(fd, bytes) }

    /// Records up to END_REQUEST; STDOUT and STDERR gathered.
    public func readResponse() throws(FastCGIError) -> FastCGIResponse { try SocketIO.readResponse(fd) }

    /// Whether the server closes the connection within `timeout` seconds (false: still open).
    public func closedByServer(within timeout: Double) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(timeout * 1000)) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) <= 0
    }

    /// Once: a second close() would close whatever descriptor another thread opened since.
    public func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    deinit { close() }
}

extension FastCGIConnection {
    /// Blocks until the server has sent something (or closed, or `timeout` passed).
    public func waitForData(timeout: Double) {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while poll(&entry, 1, Int32(min(timeout * 1000, Double(Int32.max)))) < 0 && errno == EINTR {}
    }
}
