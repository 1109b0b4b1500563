import CFastCGI
import Glibc

/// What a plugin's `forklift_request *` points to: libfcgi's request, read through.
final class RequestBridge {
    let request: UnsafeMutablePointer<FCGX_Request>

    /// The path the request is routed by, and the same as a C string for `request_path`.
    let routedPath: String
    let path: UnsafeMutablePointer<CChar>

    init(_ request: UnsafeMutablePointer<FCGX_Request>) {
        self.request = request
        routedPath = RequestPath.resolve { FCGX_GetParam($0, request.pointee.envp).map { String(cString: $0) } }
        path = strdup(routedPath)
    }

    deinit { free(path) }


    var envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? { request.pointee.envp }

    func param(_ name: String) -> String? {
        FCGX_GetParam(name, envp).map { String(cString: $0) }
    }

    /// Up to `capacity` body bytes; 0 at the end; -1 when the client broke the stream.
    func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        let chunk = Int32(clamping: capacity)
        let count = FCGX_GetStr(buffer.assumingMemoryBound(to: CChar.self), chunk, request.pointee.in)
        if count < chunk && FCGX_GetError(request.pointee.in) != 0 { return -1 }
        return Int(count)
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer) -> RequestBridge {
        Unmanaged<RequestBridge>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}
