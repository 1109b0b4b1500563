import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 client on one TCP connection to 127.0.0.1, kept open between requests
/// (reconnecting after the server closed it), for the web servers the tests put in front of
/// Forklift. Reads Content-Length and chunked bodies; sends a body whole or chunked.
public final class HTTPConnection {
    public struct Response: Sendable {
        public let status: Int
        /// Names in lower case.
        public let headers: [String: String]
        public let body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public let port: UInt16
    public let timeout: Double
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    public init(port: UInt16, timeout: Double) {
        self.port = port
        self.timeout = timeout
    }

    deinit { close() }

    /// One request on a fresh connection, closed afterwards.
    public static func once(port: UInt16, _ method: String, _ path: String, body: [UInt8] = [], chunked: Bool = false,
                            timeout: Double) throws -> Response {
        let connection = HTTPConnection(port: port, timeout: timeout)
        defer { connection.close() }
        return try connection.request(method, path, body: body, chunked: chunked)
    }

    /// Whether something accepts connections on 127.0.0.1:`port`.
    public static func accepts(_ port: UInt16) -> Bool {
        guard let fd = try? connect(port: port, timeout: 1) else { return false }
        Glibc.close(fd)
        return true
    }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        buffer = []
    }

    /// `path` goes on the request line as it is (percent-escapes, dot segments and all). A
    /// `chunked` body is sent in chunks of at most 4 KiB, without a Content-Length.
    public func request(_ method: String, _ path: String, body: [UInt8] = [], chunked: Bool = false) throws -> Response {
        if fd < 0 { fd = try Self.connect(port: port, timeout: timeout) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        var payload = body
        if chunked {
            head += "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
            payload = stride(from: 0, to: body.count, by: 4096).flatMap { start in
                let chunk = body[start..<min(start + 4096, body.count)]
                return Array((String(chunk.count, radix: 16) + "\r\n").utf8) + chunk + [13, 10]
            } + Array("0\r\n\r\n".utf8)
        } else if method == "POST" || !body.isEmpty {
            head += "Content-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        try sendAll(Array(head.utf8) + payload)
        let response = try readResponse()
        if response.headers["connection"]?.lowercased() == "close" { close() }
        return response
    }

    public static func connect(port: UInt16, timeout: Double) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FastCGIError("socket failed: \(String(cString: strerror(errno)))") }
        var value = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw FastCGIError("connect to 127.0.0.1:\(port) failed: \(reason)")
        }
        return fd
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close()
                throw FastCGIError("send to 127.0.0.1:\(port) failed: \(reason)")
            }
            sent += count
        }
    }

    /// Reads more into the buffer; throws on timeout or when the server closed.
    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count > 0 {
                buffer += chunk[0..<count]
                return
            }
            if count < 0 && errno == EINTR { continue }
            let reason = count == 0 ? "the server closed the connection" :
                errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within \(timeout) s" : String(cString: strerror(errno))
            close()
            throw FastCGIError("reading the response: \(reason)")
        }
    }

    private func take(_ count: Int) throws -> [UInt8] {
        while buffer.count < count { try fill() }
        let bytes = Array(buffer[0..<count])
        buffer.removeFirst(count)
        return bytes
    }

    /// Up to CR LF (consumed, not returned).
    private func line() throws -> String {
        var searched = 0
        while true {
            if let end = Self.find([13, 10], in: buffer, from: max(0, searched - 1)) {
                let text = String(decoding: buffer[0..<end], as: UTF8.self)
                buffer.removeFirst(end + 2)
                return text
            }
            searched = buffer.count
            try fill()
        }
    }

    private func readResponse() throws -> Response {
        let statusLine = try line()
        let words = statusLine.split(separator: " ")
        guard words.count >= 2, words[0].hasPrefix("HTTP/1."), let status = Int(words[1]) else {
            close()
            throw FastCGIError("not an HTTP status line: \(statusLine)")
        }
        var headers: [String: String] = [:]
        while true {
            let header = try line()
            if header.isEmpty { break }
            guard let colon = header.firstIndex(of: ":") else { continue }
            headers[header[..<colon].lowercased()] = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body: [UInt8] = []
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while true {
                let sizeLine = try line()
                guard let size = Int(sizeLine.split(separator: ";").first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "", radix: 16) else {
                    close()
                    throw FastCGIError("bad chunk size line: \(sizeLine)")
                }
                if size == 0 {
                    while try !line().isEmpty {} // trailers
                    break
                }
                body += try take(size)
                _ = try take(2)
            }
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            body = try take(length)
        } else {
            // Delimited by the close.
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = recv(fd, &chunk, chunk.count, 0)
                if count > 0 { buffer += chunk[0..<count] } else if count < 0 && errno == EINTR { continue } else { break }
            }
            body = buffer
            close()
        }
        return Response(status: status, headers: headers, body: body)
    }

    private static func find(_ pattern: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= pattern.count, start <= bytes.count - pattern.count else { return nil }
        for index in start...(bytes.count - pattern.count) where bytes[index] == pattern[0] {
            if Array(bytes[index..<(index + pattern.count)]) == pattern { return index }
        }
        return nil
    }
}

