import CFastCGI
import CForkliftSys
import ForkliftClient
import Glibc

/// What a plugin's `forklift_response *` points to: status and headers are held back until
/// the first body write or flush, then sent as CGI headers (`Status: 200 OK`) on libfcgi's
/// stdout stream. Reused by a worker's requests as `RequestBridge` is (`begin`).
final class ResponseBridge {
    /// The request: its stdout stream (libfcgi makes one per request, in the same
    /// FCGX_Request), and its connection and id for the records a large write sends itself.
    private let request: UnsafeMutablePointer<FCGX_Request>
    private var out: UnsafeMutablePointer<FCGX_Stream> { request.pointee.out }
    private(set) var status = 200
    private var headers: [(name: String, value: String)] = [] {
        didSet { hasHeaders = !headers.isEmpty }
    }
    /// `!headers.isEmpty`, read without touching the array: an access to a class's array
    /// property is checked for exclusivity at run time (two calls on every request).
    private var hasHeaders = false
    /// The plugin set a Content-Type (found once, when it was added).
    private var hasContentType = false
    private(set) var headersSent = false
    /// The client went away; later writes are dropped.
    private(set) var broken = false
    private(set) var bodyBytes = 0
    /// Where libfcgi's stdout buffer begins, for a large write to send what it holds itself;
    /// found at the first byte of each request's response (a new stream each request).
    private var bufferStart: UnsafeMutablePointer<UInt8>?

    private let earlyFinish: EarlyFinish?

    init(request: UnsafeMutablePointer<FCGX_Request>, earlyFinish: EarlyFinish? = nil) {
        self.request = request
        self.earlyFinish = earlyFinish
    }

    /// Starts the next request's response.
    func begin() {
        status = 200
        if hasHeaders { headers.removeAll(keepingCapacity: true) }
        hasContentType = false
        headersSent = false
        broken = false
        bodyBytes = 0
        bufferStart = nil
    }

    /// The handler is done with the response but not with its work (fastcgi_finish_request).
    func finish() -> Bool {
        guard let earlyFinish else { return false }
        if earlyFinish.finished { return true }
        guard sendHeadersIfNeeded() else { return false }
        if !earlyFinish.finish() { broken = true }
        return !broken
    }

    /// Finished early: later writes fail as if the client were gone.
    private var closed: Bool { earlyFinish?.finished == true }

    func setStatus(_ code: Int) -> Bool {
        guard !headersSent, (100...999).contains(code) else { return false }
        status = code
        return true
    }

    func addHeader(_ name: String, _ value: String) -> Bool {
        guard !headersSent, HeaderName.isValid(name), HeaderName.isValidValue(value) else { return false }
        headers.append((name, value))
        if !hasContentType && name.utf8.count == 12 && name.lowercased() == "content-type" { hasContentType = true }
        return true
    }

    /// A header the response has (for the access log's %{Name}o), case-insensitive.
    func header(_ name: String) -> String? {
        if name.lowercased() == "content-type" && !headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            return "text/plain; charset=utf-8"
        }
        return headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// From this size on a write goes out as records of up to 64 KiB sent from the plugin's
    /// bytes (`forklift_write_stdout`), after what libfcgi holds: libfcgi would copy it
    /// into its 8 KiB buffer and send one record per 8 KiB, and each send wakes a client
    /// that waits to read (a 1 MiB response: 128 sends and about 90 wake-ups of the client,
    /// then 1 to 3 sendmsg calls).
    static let directWriteMinimum = 16384

    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !closed, sendHeadersIfNeeded() else { return false }
        if bytes.count >= Self.directWriteMinimum { return writeRecords(bytes) }
        guard bytes.count > 0 else { return true }
        let count = Int32(bytes.count) // under directWriteMinimum
        guard FCGX_PutStr(bytes.baseAddress!.assumingMemoryBound(to: CChar.self), count, out) == count else {
            broken = true
            return false
        }
        bodyBytes += bytes.count
        return true
    }

    /// A large write: what libfcgi's buffer holds (the headers, small writes) first, so the
    /// order stays, then the bytes as stdout records of their own, in one sendmsg: flushed
    /// apart, the headers woke the client once more for each response.
    private func writeRecords(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard out.pointee.isClosed == 0 else {
            broken = true
            return false
        }
        var held: UnsafeMutablePointer<UInt8>? = nil
        var heldLength = 0
        if let start = bufferStart, let next = out.pointee.wrNext, let stop = out.pointee.stop, start < next, next <= stop {
            (held, heldLength) = (start, next - start)
        } else if FCGX_FFlush(out) != 0 {
            broken = true
            return false
        }
        guard forklift_write_stdout(request.pointee.ipcFd, request.pointee.requestId, held, heldLength, bytes.baseAddress, bytes.count) >= 0 else {
            // The stream is failed and taken as closed already: libfcgi's close at the
            // request's end writes nothing more, no end of stdout and no END_REQUEST after a
            // record cut short (libfcgi's own failed write leaves its buffer full, which stops
            // them; its buffer may be empty here, and they would go out).
            if out.pointee.FCGI_errno == 0 { out.pointee.FCGI_errno = errno != 0 ? errno : EIO }
            out.pointee.isClosed = 1
            out.pointee.wasFCloseCalled = 1
            broken = true
            return false
        }
        if let held {
            // Sent: empty, as libfcgi's flush leaves it, with its header's 8 bytes reserved.
            out.pointee.wrNext = held + 8
        }
        bodyBytes += bytes.count
        return true
    }

    func flush() -> Bool {
        guard !closed, sendHeadersIfNeeded() else { return false }
        if FCGX_FFlush(out) != 0 { broken = true }
        return !broken
    }

    /// Replies with a complete response (404, 500, the status page).
    func respond(status: Int, body: String, contentType: String = "text/plain; charset=utf-8", headers extra: [(String, String)] = []) {
        _ = setStatus(status)
        headers = [("Content-Type", contentType)] + extra
        hasContentType = true
        var text = body
        text.withUTF8 { _ = write(UnsafeRawBufferPointer($0)) }
    }

    /// Sends status and headers if no byte went out yet (a plugin that wrote no body).
    @discardableResult
    func sendHeadersIfNeeded() -> Bool {
        if broken { return false }
        if headersSent { return true }
        headersSent = true
        // Nothing went into this request's stdout stream yet: libfcgi's buffer is empty but
        // for the 8 bytes it reserves there for a record's header (NewStream, EmptyBuffProc).
        bufferStart = out.pointee.wrNext.map { $0 - 8 }
        if status == 200 && !hasHeaders {
            // Most responses: one constant block, no string built (3,600 instructions were).
            return put(Self.plainOK)
        }
        var head = Self.statusLine(status)
        if !hasContentType { head += Self.defaultContentType }
        for header in headers {
            head += header.name.utf8
            head += Self.colon
            head += header.value.utf8
            head += Self.crlf
        }
        head += Self.crlf
        return put(head)
    }

    private func put(_ bytes: [UInt8]) -> Bool {
        let count = Int32(bytes.count)
        let written = bytes.withUnsafeBytes { FCGX_PutStr($0.baseAddress!.assumingMemoryBound(to: CChar.self), count, out) }
        if written != count { broken = true }
        return !broken
    }

    private static let crlf = Array("\r\n".utf8)
    private static let colon = Array(": ".utf8)
    private static let defaultContentType = Array("Content-Type: text/plain; charset=utf-8\r\n".utf8)
    private static let plainOK = statusLine(200) + defaultContentType + crlf
    private static let ok = Array("Status: 200 OK\r\n".utf8)

    static func statusLine(_ status: Int) -> [UInt8] {
        status == 200 ? ok : Array("Status: \(status) \(HTTPStatus.reason(status))\r\n".utf8)
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer) -> ResponseBridge {
        Unmanaged<ResponseBridge>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}
