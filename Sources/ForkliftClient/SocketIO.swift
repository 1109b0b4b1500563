import Glibc

/// Blocking reads and writes of whole records on a socket (its timeouts bound each).
enum SocketIO {
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws(FastCGIError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FastCGIError(errno == EAGAIN ? "send: timed out (the server does not read)" : "send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Records up to END_REQUEST; STDOUT and STDERR gathered.
    static func readResponse(_ fd: Int32) throws(FastCGIError) -> FastCGIResponse {
        var stdout: [UInt8] = [], stderr: [UInt8] = []
        while true {
            let header = try read(fd, 8)
            guard header[0] == FastCGIRecords.version else { throw FastCGIError("bad record version \(header[0]) (is this a FastCGI server?)") }
            let length = Int(header[4]) << 8 | Int(header[5])
            let content = try read(fd, length + Int(header[6]))
            switch FastCGIRecords.RecordType(rawValue: header[1]) {
            case .stdout: stdout += content.prefix(length)
            case .stderr: stderr += content.prefix(length)
            case .endRequest:
                guard length >= 8 else { throw FastCGIError("END_REQUEST of \(length) bytes, expected 8") }
                let status = content.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                return FastCGIResponse(stdout: stdout, stderr: stderr, appStatus: status, protocolStatus: content[4])
            default: throw FastCGIError("unexpected record type \(header[1])")
            }
        }
    }

    /// Exactly `count` bytes.
    static func read(_ fd: Int32, _ count: Int) throws(FastCGIError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer[got...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { throw FastCGIError("connection closed by the server after \(got) of \(count) bytes of a record") }
            if n < 0 {
                if errno == EINTR { continue }
                throw FastCGIError(errno == EAGAIN ? "recv: timed out waiting for the server" : "recv: \(String(cString: strerror(errno)))")
            }
            got += n
        }
        return buffer
    }

}
