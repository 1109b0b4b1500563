import CFastCGI
import ForkliftClient
import CForkliftABI
import CForkliftSys
import Glibc

/// What a plugin's `forklift_request *` points to: libfcgi's request, read through.
///
/// A worker has one, reused by every request (`begin`, `end`): nothing is allocated to hand a
/// request to its plugin (an object per request cost an allocation, a free and their
/// reference counting on every request).
final class RequestBridge {
    private(set) var request: UnsafeMutablePointer<FCGX_Request>

    /// The path the request is routed by as a C string (for `request_path`) and its bytes
    /// (for routing): nginx's DOCUMENT_URI itself where there is one (no copy), else a copy
    /// built by `RequestPath`'s rule, freed with the request.
    private(set) var path: UnsafePointer<CChar> = RequestBridge.rootPath
    private(set) var pathBytes = UnsafeRawBufferPointer(start: RequestBridge.rootPath, count: 1)
    private var ownsPath = false
    private var routedPathText: String?

    /// The params the worker reads itself, found in one pass.
    private(set) var known = forklift_request_params()

    /// max_body_size (0: none): a body that turns out longer than CONTENT_LENGTH said (or
    /// than the limit, with no CONTENT_LENGTH) stops here.
    let bodyLimit: Int
    private var bodyRead = 0
    /// A read went past `bodyLimit`: every later one fails the same way.
    private(set) var exceededBodyLimit = false

    /// After the response was finished early the body is drained: reads see its end.
    private let earlyFinish: EarlyFinish?

    /// A bridge for `request`, begun (a worker then reuses it: `begin`).
    init(_ request: UnsafeMutablePointer<FCGX_Request>, bodyLimit: Int = 0, earlyFinish: EarlyFinish? = nil) {
        self.request = request
        self.earlyFinish = earlyFinish
        self.bodyLimit = bodyLimit
        begin(request)
    }

    deinit { end() }

    /// Takes the next request (libfcgi's, after FCGX_Accept_r): its params, path and body count.
    func begin(_ request: UnsafeMutablePointer<FCGX_Request>) {
        end()
        self.request = request
        bodyRead = 0
        exceededBodyLimit = false
        routedPathText = nil
        var params = forklift_request_params()
        forklift_scan_params(request.pointee.envp, &params)
        known = params
        // RequestPath's rules, taken without a copy where the path is one of libfcgi's strings:
        // DOCUMENT_URI (nginx), or SCRIPT_NAME with no PATH_INFO (cgi-fcgi, Apache).
        if let uri = params.document_uri, uri.pointee != 0 {
            path = uri
        } else if let script = params.script_name, script.pointee != 0, params.path_info == nil || params.path_info.pointee == 0 {
            path = script
        } else {
            let resolved = RequestPath.resolve { name in
                let value: UnsafePointer<CChar>?
                switch name {
                case "DOCUMENT_URI": value = params.document_uri
                case "SCRIPT_NAME": value = params.script_name
                case "PATH_INFO": value = params.path_info
                case "REQUEST_URI": value = params.request_uri
                default: value = FCGX_GetParam(name, request.pointee.envp).map { UnsafePointer($0) }
                }
                return value.map { String(cString: $0) }
            }
            path = UnsafePointer(strdup(resolved))
            ownsPath = true
        }
        pathBytes = UnsafeRawBufferPointer(start: path, count: strlen(path))
    }

    /// The request is over (libfcgi frees its params next): the path's copy goes with it.
    func end() {
        if ownsPath { free(UnsafeMutablePointer(mutating: path)) }
        ownsPath = false
        path = Self.rootPath
        pathBytes = UnsafeRawBufferPointer(start: path, count: 1)
    }

    /// The path as a String, built only when something needs one (a 404, a log line).
    var routedPath: String {
        if let text = routedPathText { return text }
        let text = String(cString: path)
        routedPathText = text
        return text
    }

    /// What `path` points to between requests.
    nonisolated(unsafe) private static let rootPath: UnsafePointer<CChar> = UnsafePointer(strdup("/"))

    var envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? { request.pointee.envp }

    func param(_ name: String) -> String? {
        FCGX_GetParam(name, envp).map { String(cString: $0) }
    }

    /// Up to `capacity` body bytes; 0 at the end; -1 when the client broke the stream; -2 once
    /// the body is longer than `bodyLimit`.
    func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        if exceededBodyLimit { return Int(FORKLIFT_BODY_TOO_LARGE) }
        if earlyFinish?.finished == true { return 0 }
        // With a limit, at most one byte past it is read: enough to know it is exceeded.
        let room = bodyLimit > 0 ? min(capacity, bodyLimit - bodyRead + 1) : capacity
        let chunk = Int32(clamping: room)
        let count = FCGX_GetStr(buffer.assumingMemoryBound(to: CChar.self), chunk, request.pointee.in)
        if count < chunk && FCGX_GetError(request.pointee.in) != 0 { return -1 }
        bodyRead += Int(count)
        if bodyLimit > 0 && bodyRead > bodyLimit {
            exceededBodyLimit = true
            return Int(FORKLIFT_BODY_TOO_LARGE)
        }
        return Int(count)
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer) -> RequestBridge {
        Unmanaged<RequestBridge>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}
