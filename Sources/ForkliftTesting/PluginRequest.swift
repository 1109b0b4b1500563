import ForkliftClient

/// A request as a web server would send it to Forklift: the params nginx's `fastcgi_params`
/// sets for the method and target (`/path?query`, or `http://host:port/path?query`), the
/// headers as `HTTP_*` params, and the body. Params given explicitly replace a default of
/// the same name (`REMOTE_ADDR`, say) or come last.
///
/// ```swift
/// let request = PluginRequest("/greeter/x?y=1", method: "PUT", body: Array("hi".utf8),
///                             headers: [("Accept", "text/plain")], params: [("REMOTE_ADDR", "10.0.0.1")])
/// let response = plugin.respond(to: request)
/// ```
public struct PluginRequest: Sendable {
    /// The FastCGI params, in the order the handler's `request.params` lists them; the first
    /// of a repeated name is the one `request.param(_:)` returns, as with libfcgi.
    public var params: [(String, String)]
    /// The request body, read by the handler's `request.read(into:)` and `request.body()`.
    public var body: [UInt8]

    /// A request for `target` (`/path?query`, or `http://host:port/path?query` for
    /// `SERVER_NAME`, `SERVER_PORT` and `HTTP_HOST`) as nginx would send it: `REQUEST_METHOD`,
    /// `REQUEST_URI`, `DOCUMENT_URI`, `QUERY_STRING`, `REMOTE_ADDR` 127.0.0.1, and for a body
    /// its `CONTENT_LENGTH` and curl's `application/x-www-form-urlencoded`. Each of `headers`
    /// becomes `HTTP_NAME` (`X-Trace-Id` is `HTTP_X_TRACE_ID`; `Content-Type` and
    /// `Content-Length` are CGI's `CONTENT_TYPE`, `CONTENT_LENGTH`), then `params` apply.
    public init(_ target: String, method: String = "GET", body: [UInt8] = [], headers: [(String, String)] = [],
                params: [(String, String)] = []) {
        self.params = CGIRequest(target: target, method: method, bodyLength: body.count, headers: headers, params: params).pairs
        self.body = body
    }

    /// Exactly these params, nothing added (a front end that sends only some).
    public init(params: [(String, String)], body: [UInt8] = []) {
        self.params = params
        self.body = body
    }
}

/// What the plugin answered, recorded whole.
public struct PluginResponse: Sendable {
    /// The status the client would get: 500 if the handler failed before writing (the
    /// worker's rule), 413 if the body was over `maxBodySize` and nothing was written.
    public let status: Int
    /// As the plugin added them; a worker adds `Content-Type: text/plain; charset=utf-8`
    /// when there is none, and so does this.
    public let headers: [(name: String, value: String)]
    /// The body bytes the handler wrote, also those before a failure (which a client of an
    /// aborted connection may have seen part of).
    public let body: [UInt8]
    /// The handler's error (thrown, or FORKLIFT_FAILED's message), if it failed.
    public let failure: String?
    /// The handler called `finish()`: `bodyAtFinish` bytes had been written by then.
    public let finishedEarly: Bool
    /// With `finishedEarly`: the length of the body the client got; nil without.
    public let bodyAtFinish: Int?
    /// A failure after part of the body was written: the worker would abort the connection,
    /// so the client gets no complete response.
    public let aborted: Bool
    /// How much of the request body the handler read.
    public let bodyBytesRead: Int

    init(recorded: TestResponseState, failure: String?, bodyBytesRead: Int, maxBodySize: Int) {
        let overLimit = maxBodySize > 0 && bodyBytesRead > maxBodySize && !recorded.headersSent
        var headers = recorded.headers
        if !headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            headers.append(("Content-Type", "text/plain; charset=utf-8"))
        }
        if overLimit {
            status = 413
        } else if failure != nil && !recorded.headersSent {
            status = 500
        } else {
            status = recorded.status
        }
        self.headers = headers
        body = recorded.body
        self.failure = failure
        finishedEarly = recorded.finishedEarly
        bodyAtFinish = recorded.bytesAtFinish
        aborted = failure != nil && recorded.headersSent && !recorded.finishedEarly
        self.bodyBytesRead = bodyBytesRead
    }

    /// The body as UTF-8 text (invalid bytes replaced with U+FFFD).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// The first header named `name`, compared without case.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}
