/// One-shot requests: a connection per request, closed after it.
public enum FastCGIClient {
    public typealias RecordType = FastCGIRecords.RecordType

    /// Sends one request and reads the whole response.
    public static func request(_ address: FastCGIAddress, params: [(String, String)], body: [UInt8] = [],
                               timeout: Double = 30) throws(FastCGIError) -> FastCGIResponse {
        try FastCGIConnection(address, timeout: timeout).request(params: params, body: body)
    }

    public static func get(_ address: FastCGIAddress, _ path: String, query: String = "", timeout: Double = 30) throws(FastCGIError) -> FastCGIResponse {
        try request(address, params: cgiParams(path: path, query: query), timeout: timeout)
    }

    /// The CGI params a web server sends for `method path?query`, plus `extra` (which come
    /// last, so that they win where a server reads the last of two).
    public static func cgiParams(method: String = "GET", path: String, query: String = "", bodyLength: Int = 0,
                                 contentType: String = "application/octet-stream", extra: [(String, String)] = []) -> [(String, String)] {
        var params: [(String, String)] = [
            ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_METHOD", method),
            ("SCRIPT_NAME", path), ("REQUEST_URI", query.isEmpty ? path : "\(path)?\(query)"), ("QUERY_STRING", query),
            ("SERVER_NAME", "localhost"), ("SERVER_PORT", "80"), ("REMOTE_ADDR", "127.0.0.1"),
        ]
        if bodyLength > 0 { params += [("CONTENT_LENGTH", String(bodyLength)), ("CONTENT_TYPE", contentType)] }
        return params + extra
    }

    // MARK: - Lower level, for crafted traffic

    public static func record(_ type: RecordType, _ content: [UInt8]) -> [UInt8] { FastCGIRecords.record(type, content) }
    public static func stream(_ type: RecordType, _ bytes: [UInt8]) -> [UInt8] { FastCGIRecords.stream(type, bytes) }
    public static func length(_ n: Int) -> [UInt8] { FastCGIRecords.length(n) }

    /// A connected socket the caller owns (and closes).
    public static func connect(_ address: FastCGIAddress, timeout: Double) throws(FastCGIError) -> Int32 {
        try address.connect(timeout: timeout)
    }

    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws(FastCGIError) {
        try SocketIO.sendAll(fd, bytes)
    }

    public static func readResponse(_ fd: Int32) throws(FastCGIError) -> FastCGIResponse {
        try SocketIO.readResponse(fd)
    }

    /// The next whole record (a test that looks at how a response was cut into records).
    public static func readRecord(_ fd: Int32) throws(FastCGIError) -> FastCGIRecord {
        try SocketIO.readRecord(fd)
    }

    /// Whole records up to and including END_REQUEST.
    public static func readRecords(_ fd: Int32) throws(FastCGIError) -> [FastCGIRecord] {
        var records: [FastCGIRecord] = []
        while records.last?.type != FastCGIRecords.RecordType.endRequest.rawValue { records.append(try SocketIO.readRecord(fd)) }
        return records
    }
}
