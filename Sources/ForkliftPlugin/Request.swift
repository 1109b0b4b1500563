import CForkliftABI

/// One FastCGI request, valid during `handle` only.
///
/// Params are the CGI variables the web server sent (nginx's `fastcgi_params`: `REQUEST_METHOD`,
/// `QUERY_STRING`, `HTTP_*` for the headers...); the body is read from the connection as the
/// handler asks for it, never buffered whole by the server. Each accessor asks the host and
/// makes new Strings on the worker's heap: read a param once, not in a loop.
///
/// A value of two pointers (the host's table and its request), not an object: nothing is
/// allocated per request to hand it over.
public struct Request {
    let api: UnsafePointer<forklift_host_api>
    let raw: OpaquePointer

    init(api: UnsafePointer<forklift_host_api>, raw: OpaquePointer) {
        self.api = api
        self.raw = raw
    }

    /// A FastCGI param by name, e.g. `request.param("HTTP_USER_AGENT")`, or nil when the web
    /// server did not send it. The first of a repeated name.
    public func param(_ name: String) -> String? {
        api.pointee.request_param?(raw, name).map { String(cString: $0) }
    }

    /// Every param in the order the web server sent them (a new array on every call).
    public var params: [(name: String, value: String)] {
        guard var entry = api.pointee.request_params?(raw) else { return [] }
        var result: [(String, String)] = []
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                result.append((String(text[..<equals]), String(text[text.index(after: equals)...])))
            } else {
                result.append((text, ""))
            }
            entry += 1
        }
        return result
    }

    /// The path the request was routed by, e.g. "/hello/world", without the query: nginx's
    /// `DOCUMENT_URI` (normalised by nginx), else `SCRIPT_NAME` + `PATH_INFO` (Apache,
    /// lighttpd), else `REQUEST_URI` up to its "?"; "/" when none is set.
    public var path: String { api.pointee.request_path.flatMap { $0(raw) }.map { String(cString: $0) } ?? "/" }
    /// REQUEST_METHOD, e.g. "GET".
    public var method: String { param("REQUEST_METHOD") ?? "GET" }
    /// QUERY_STRING without the "?", or "".
    public var query: String { param("QUERY_STRING") ?? "" }

    /// Reads up to `buffer.count` bytes of the body; 0 at its end (and after
    /// ``Response/finish()``). Blocks until bytes arrive. Throws
    /// `RequestBodyError.interrupted` when the client broke the stream off (it closed the
    /// connection, or sent nothing for `request_read_timeout`), `.overMaxBodySize` when the
    /// body is longer than the pool allows (the server answers 413 if nothing was sent yet).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(RequestBodyError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let count = api.pointee.request_read?(raw, base, buffer.count) ?? -1
        if count == Int(FORKLIFT_BODY_TOO_LARGE) { throw .overMaxBodySize }
        if count < 0 { throw .interrupted }
        return count
    }

    /// The whole body. Throws `RequestBodyError.tooLarge` when it is longer than `limit`
    /// bytes (default 64 MiB), `.interrupted` when the client broke it off, `.overMaxBodySize` past the pool's
    /// `max_body_size`. The array is allocated once at the CONTENT_LENGTH the client declared
    /// (up to `limit` and 16 MiB; a larger body grows from there) and read into directly; for large uploads, stream with
    /// ``read(into:)`` instead.
    public func body(limit: Int = 64 << 20) throws(RequestBodyError) -> [UInt8] {
        // Up to 16 MiB at once: a client may declare more than it sends; beyond, it grows.
        let declared = param("CONTENT_LENGTH").flatMap { Int($0) }.map { min(max($0, 0), max(limit, 0), 16 << 20) } ?? 0
        var failure: RequestBodyError?
        var ended = false
        var body = [UInt8](unsafeUninitializedCapacity: declared) { buffer, count in
            let bytes = UnsafeMutableRawBufferPointer(buffer)
            while count < declared {
                do throws(RequestBodyError) {
                    let read = try read(into: UnsafeMutableRawBufferPointer(rebasing: bytes[count...]))
                    if read == 0 { ended = true; return }
                    count += read
                } catch {
                    failure = error
                    return
                }
            }
        }
        if let failure { throw failure }
        if ended { return body }
        // What the client sent beyond what it declared (all of it, without CONTENT_LENGTH);
        // usually only the end.
        return try withUnsafeTemporaryAllocation(byteCount: 65536, alignment: 16) { chunk throws(RequestBodyError) -> [UInt8] in
            while true {
                let count = try read(into: chunk)
                if count == 0 { return body }
                guard body.count + count <= limit else { throw .tooLarge(limit: limit) }
                body += UnsafeRawBufferPointer(rebasing: chunk[0..<count])
            }
        }
    }
}

/// Why a request's body could not be read whole.
public enum RequestBodyError: Error, CustomStringConvertible, Equatable {
    /// Longer than the limit the handler asked for.
    case tooLarge(limit: Int)
    /// The client closed the connection, or stalled, before the body's end: not a body that is
    /// too large, and nothing to answer.
    case interrupted
    /// Longer than the pool's `max_body_size`: the server answers 413 when the handler
    /// returns (or throws) without having sent its headers.
    case overMaxBodySize

    /// What went wrong, for a log line.
    public var description: String {
        switch self {
        case .tooLarge(let limit): "the request body is larger than \(limit) bytes"
        case .interrupted: "the client broke the request body off (it closed the connection or stalled)"
        case .overMaxBodySize: "the request body is larger than the pool's max_body_size"
        }
    }
}
