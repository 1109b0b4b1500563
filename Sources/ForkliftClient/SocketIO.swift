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

    /// One whole record.
    static func readRecord(_ fd: Int32) throws(FastCGIError) -> FastCGIRecord {
        let header = try read(fd, 8)
        guard header[0] == FastCGIRecords.version else { throw FastCGIError("bad record version \(header[0]) (is this a FastCGI server?)") }
        let length = Int(header[4]) << 8 | Int(header[5])
        let padded = try read(fd, length + Int(header[6]))
        return FastCGIRecord(type: header[1], requestID: UInt16(header[2]) << 8 | UInt16(header[3]),
                             content: Array(padded.prefix(length)), paddingLength: Int(header[6]))
    }

    /// Records up to END_REQUEST; STDOUT and STDERR gathered.
    static func readResponse(_ fd: Int32) throws(FastCGIError) -> FastCGIResponse {
        var stdout: [UInt8] = [], stderr: [UInt8] = []
        while true {
            let record = try readRecord(fd)
            switch FastCGIRecords.RecordType(rawValue: record.type) {
            case .stdout: stdout += record.content
            case .stderr: stderr += record.content
            case .endRequest:
                guard record.content.count >= 8 else { throw FastCGIError("END_REQUEST of \(record.content.count) bytes, expected 8") }
                let status = record.content.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                return FastCGIResponse(stdout: stdout, stderr: stderr, appStatus: status, protocolStatus: record.content[4])
            default: throw FastCGIError("unexpected record type \(record.type)")
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
