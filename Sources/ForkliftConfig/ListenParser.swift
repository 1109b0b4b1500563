import ForkliftSystem

/// `listen` as PHP-FPM users write it: a unix socket path (`/run/forklift/www.sock`,
/// `run/www.sock`, `unix:/path`), or TCP as `host:port`, `[ipv6]:port`, or a bare `port`
/// (every IPv4 address).
enum ListenParser {
    struct Failure: Error { let message: String }

    static func parse(_ text: String, prefix: String) throws(Failure) -> ListenAddress {
        if text.hasPrefix("unix:") {
            return .unix(path: Paths.resolve(String(text.dropFirst(5)), against: prefix))
        }
        if text.contains("/") || text.hasSuffix(".sock") {
            return .unix(path: Paths.resolve(text, against: prefix))
        }
        let host: String
        let portText: String
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw Failure(message: "expected [IPv6]:port, got \"\(text)\"")
            }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(close, offsetBy: 2)...])
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
        } else {
            host = "*"
            portText = text
        }
        guard let port = UInt16(portText), !host.isEmpty else {
            var message = "expected a unix socket path or host:port with a port from 0 to 65535, got \"\(text)\""
            if host == "*" && !text.isEmpty && !text.allSatisfy(\.isNumber) {
                // Neither a port nor, by its looks, a path: say how a path looks.
                message += " (a socket path has a \"/\" or ends in .sock; for any other name write \"unix:\(text)\")"
            }
            throw Failure(message: message)
        }
        return .tcp(host: canonical(host), port: port)
    }

    /// A numeric address in its one spelling ("0:0::1" and "::1" are one address), so that
    /// two pools on it are seen to collide; names and "*" stay as written.
    static func canonical(_ host: String) -> String {
        IPAddress.bytes(host).flatMap(IPAddress.text) ?? host
    }
}

extension ListenAddress {
    /// Reads back an address from its `description` (an absolute path, or host:port).
    public init?(parsing text: String) {
        guard let address = try? ListenParser.parse(text, prefix: "/") else { return nil }
        self = address
    }
}
