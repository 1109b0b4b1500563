import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small, strict FastCGI client (responder role) for the tests: one request per
/// connection, every record checked.
public enum FastCGIAddress: CustomStringConvertible, Sendable {
    case unix(String)
    case tcp(host: String, port: UInt16)

    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }
}

public struct FastCGIResponse: Sendable {
    /// The raw FCGI_STDOUT stream: CGI headers, a blank line, the body.
    public let stdout: [UInt8]
    public let stderr: [UInt8]
    public let appStatus: UInt32

    public var status: Int {
        guard let line = headers.first(where: { $0.name.lowercased() == "status" })?.value,
              let code = Int(line.prefix(3)) else { return 200 }
        return code
    }

    public var headers: [(name: String, value: String)] {
        let head = stdout[..<(headerEnd ?? stdout.count)]
        return String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n").compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
    }

    public var body: [UInt8] {
        guard let end = headerEnd else { return [] }
        return Array(stdout[(end + 4)...])
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    private var headerEnd: Int? {
        let marker: [UInt8] = [13, 10, 13, 10]
        guard stdout.count >= 4 else { return nil }
        return (0...(stdout.count - 4)).first { Array(stdout[$0..<($0 + 4)]) == marker }
    }
}

public struct FastCGIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public enum FastCGIClient {
    static let version: UInt8 = 1
    public enum RecordType: UInt8 { case beginRequest = 1, endRequest = 3, params = 4, stdin = 5, stdout = 6, stderr = 7, getValues = 9, getValuesResult = 10 }

    /// Sends one request and reads the whole response.
    public static func request(_ address: FastCGIAddress, params: [(String, String)], body: [UInt8] = [],
                               timeout: Double = 30) throws -> FastCGIResponse {
        let fd = try connect(address, timeout: timeout)
        defer { close(fd) }
        var out: [UInt8] = []
        out += record(.beginRequest, [0, 1, 0, 0, 0, 0, 0, 0]) // role RESPONDER, flags 0 (close after)
        var encoded: [UInt8] = []
        for (name, value) in params { encoded += length(name.utf8.count) + length(value.utf8.count) + Array(name.utf8) + Array(value.utf8) }
        out += stream(.params, encoded)
        out += stream(.stdin, body)
        try sendAll(fd, out)
        return try readResponse(fd)
    }

    /// The usual CGI params for `method path?query`, plus `extra`.
    public static func cgiParams(method: String = "GET", path: String, query: String = "", bodyLength: Int = 0,
                                 extra: [(String, String)] = []) -> [(String, String)] {
        var params: [(String, String)] = [
            ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_METHOD", method),
            ("SCRIPT_NAME", path), ("REQUEST_URI", query.isEmpty ? path : "\(path)?\(query)"), ("QUERY_STRING", query),
            ("SERVER_NAME", "localhost"), ("SERVER_PORT", "80"), ("REMOTE_ADDR", "127.0.0.1"),
        ]
        if bodyLength > 0 { params += [("CONTENT_LENGTH", String(bodyLength)), ("CONTENT_TYPE", "application/octet-stream")] }
        return params + extra
    }

    public static func get(_ address: FastCGIAddress, _ path: String, query: String = "", timeout: Double = 30) throws -> FastCGIResponse {
        try request(address, params: cgiParams(path: path, query: query), timeout: timeout)
    }

    // MARK: - Records

    public static func record(_ type: RecordType, _ content: [UInt8]) -> [UInt8] {
        precondition(content.count <= 65535)
        let padding = (8 - content.count % 8) % 8
        return [version, type.rawValue, 0, 1, UInt8(content.count >> 8), UInt8(content.count & 0xFF), UInt8(padding), 0]
            + content + [UInt8](repeating: 0, count: padding)
    }

    /// A stream split into records of at most 65535 bytes, closed by an empty record.
    public static func stream(_ type: RecordType, _ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + 65535, bytes.count)
            out += record(type, Array(bytes[offset..<end]))
            offset = end
        }
        return out + record(type, [])
    }

    public static func length(_ n: Int) -> [UInt8] {
        n < 128 ? [UInt8(n)] : [UInt8((n >> 24) & 0x7F) | 0x80, UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
    }

    public static func readResponse(_ fd: Int32) throws -> FastCGIResponse {
        var stdout: [UInt8] = [], stderr: [UInt8] = []
        while true {
            let header = try readExactly(fd, 8)
            guard header[0] == version else { throw FastCGIError("bad record version \(header[0])") }
            let length = Int(header[4]) << 8 | Int(header[5])
            let content = try readExactly(fd, length + Int(header[6]))
            switch RecordType(rawValue: header[1]) {
            case .stdout: stdout += content.prefix(length)
            case .stderr: stderr += content.prefix(length)
            case .endRequest:
                let status = content.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                return FastCGIResponse(stdout: stdout, stderr: stderr, appStatus: status)
            default: throw FastCGIError("unexpected record type \(header[1])")
            }
        }
    }

    // MARK: - Sockets

    public static func connect(_ address: FastCGIAddress, timeout: Double) throws -> Int32 {
        let fd: Int32
        var result: Int32
        switch address {
        case .unix(let path):
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            result = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        case .tcp(let host, let port):
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            inet_pton(AF_INET, host, &sa.sin_addr)
            result = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw FastCGIError("connect to \(address): \(message)")
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FastCGIError("send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    static func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { throw FastCGIError("connection closed by the server after \(got) of \(count) bytes of a record") }
            if n < 0 {
                if errno == EINTR { continue }
                throw FastCGIError("recv: \(String(cString: strerror(errno)))")
            }
            got += n
        }
        return buffer
    }
}

/// A connection the client keeps open across requests (FCGI_KEEP_CONN), as nginx's upstream
/// keepalive does.
public final class KeptConnection: @unchecked Sendable {
    private(set) var fd: Int32

    public init(_ address: FastCGIAddress, timeout: Double = 30) throws {
        fd = try FastCGIClient.connect(address, timeout: timeout)
    }

    /// One request on the connection; the server keeps it open afterwards.
    public func get(_ path: String, query: String = "") throws -> FastCGIResponse {
        var out = FastCGIClient.record(.beginRequest, [0, 1, 1, 0, 0, 0, 0, 0]) // role RESPONDER, FCGI_KEEP_CONN
        var encoded: [UInt8] = []
        for (name, value) in FastCGIClient.cgiParams(path: path, query: query) {
            encoded += FastCGIClient.length(name.utf8.count) + FastCGIClient.length(value.utf8.count) + Array(name.utf8) + Array(value.utf8)
        }
        out += FastCGIClient.stream(.params, encoded) + FastCGIClient.stream(.stdin, [])
        try FastCGIClient.sendAll(fd, out)
        return try FastCGIClient.readResponse(fd)
    }

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
