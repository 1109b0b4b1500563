/// What a responder sent back: its FCGI_STDOUT (CGI headers, a blank line, the body), its
/// FCGI_STDERR, and END_REQUEST's application status.
public struct FastCGIResponse: Sendable {
    public let stdout: [UInt8]
    public let stderr: [UInt8]
    public let appStatus: UInt32
    /// END_REQUEST's protocol status: 0 REQUEST_COMPLETE, 3 UNKNOWN_ROLE, ...
    public let protocolStatus: UInt8

    public init(stdout: [UInt8], stderr: [UInt8], appStatus: UInt32, protocolStatus: UInt8 = 0) {
        self.stdout = stdout
        self.stderr = stderr
        self.appStatus = appStatus
        self.protocolStatus = protocolStatus
    }

    /// The `Status:` header's code; 200 without one (CGI's rule).
    public var status: Int {
        guard let line = header("status"), let code = Int(line.prefix(3)) else { return 200 }
        return code
    }

    /// The CGI headers in order, names as sent.
    public var headers: [(name: String, value: String)] {
        String(decoding: stdout[..<(headerEnd ?? stdout.count)], as: UTF8.self).split(separator: "\r\n").compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }))
        }
    }

    /// The first header named `name`, compared without case.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    /// The header block as sent, without the blank line.
    public var headerText: String { String(decoding: stdout[..<(headerEnd ?? stdout.count)], as: UTF8.self) }

    public var body: [UInt8] {
        guard let end = headerEnd else { return [] }
        return Array(stdout[(end + 4)...])
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    private var headerEnd: Int? {
        guard stdout.count >= 4 else { return nil }
        return (0...(stdout.count - 4)).first { stdout[$0] == 13 && stdout[$0 + 1] == 10 && stdout[$0 + 2] == 13 && stdout[$0 + 3] == 10 }
    }
}
