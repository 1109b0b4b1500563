/// The params a web server sends for an HTTP request, as nginx's `fastcgi_params` (with
/// `DOCUMENT_URI`, which Forklift routes by) does: built from a path or URL, a method,
/// headers (as `HTTP_*`) and the body's length. Params given explicitly replace a default of
/// the same name, or come last.
public struct CGIRequest: Sendable {
    public private(set) var pairs: [(String, String)]

    /// `target`: `/path?query`, or `http://host:port/path?query` (host and port become
    /// SERVER_NAME, SERVER_PORT and HTTP_HOST).
    public init(target: String, method: String = "GET", bodyLength: Int = 0,
                headers: [(String, String)] = [], params: [(String, String)] = []) {
        var host = "localhost"
        var port = "80"
        var scheme = "http"
        var rest = Substring(target)
        for prefix in ["http://", "https://"] where rest.hasPrefix(prefix) {
            scheme = String(prefix.dropLast(3))
            port = scheme == "https" ? "443" : "80"
            rest = rest.dropFirst(prefix.count)
            let authority = rest.prefix { $0 != "/" && $0 != "?" }
            rest = rest.dropFirst(authority.count)
            if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
                host = String(authority[..<colon])
                port = String(authority[authority.index(after: colon)...])
            } else {
                host = String(authority)
            }
        }
        if !rest.hasPrefix("/") { rest = "/" + rest }
        let path = String(rest.prefix { $0 != "?" })
        let query = rest.count > path.count ? String(rest.dropFirst(path.count + 1)) : ""
        var pairs: [(String, String)] = [
            ("QUERY_STRING", query), ("REQUEST_METHOD", method), ("CONTENT_TYPE", ""), ("CONTENT_LENGTH", bodyLength > 0 ? String(bodyLength) : ""),
            ("SCRIPT_NAME", path), ("REQUEST_URI", String(rest)), ("DOCUMENT_URI", path), ("DOCUMENT_ROOT", "/"),
            ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_SCHEME", scheme), ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("SERVER_SOFTWARE", "forklift-request"), ("REMOTE_ADDR", "127.0.0.1"), ("REMOTE_PORT", "0"),
            ("SERVER_ADDR", "127.0.0.1"), ("SERVER_PORT", port), ("SERVER_NAME", host), ("HTTP_HOST", port == "80" || port == "443" ? host : "\(host):\(port)"),
        ]
        if bodyLength > 0 { pairs[2].1 = "application/x-www-form-urlencoded" } // curl's -d default
        func set(_ name: String, _ value: String) {
            if let index = pairs.firstIndex(where: { $0.0 == name }) { pairs[index].1 = value } else { pairs.append((name, value)) }
        }
        for (name, value) in headers {
            let upper = name.uppercased().map { $0 == "-" ? "_" : $0 }
            let key = String(upper)
            set(key == "CONTENT_TYPE" || key == "CONTENT_LENGTH" ? key : "HTTP_" + key, value)
        }
        for (name, value) in params { set(name, value) }
        self.pairs = pairs
    }

    public func value(_ name: String) -> String? { pairs.first { $0.0 == name }?.1 }
}
