import CForkliftABI

/// The response to one request, valid during `handle` only. Status and headers are sent
/// with the first body write or flush; after that they can no longer change.
///
/// ```swift
/// try response.setStatus(201)
/// try response.addHeader("Content-Type", "application/json")
/// try response.write(#"{"id": 42}"#)
/// ```
///
/// Writes are buffered by libfcgi and go out in FastCGI records as the buffer fills, and at
/// the end of `handle`. Every method throws ``PluginError`` when the host refuses: a status or
/// header after the headers went out, an invalid header, or a client that went away. Let
/// such an error propagate, or catch it to stop work nobody will read.
///
/// A value of two pointers, as ``Request``: its state (status, headers, what was sent) is
/// the host's.
public struct Response {
    let api: UnsafePointer<forklift_host_api>
    let raw: OpaquePointer

    init(api: UnsafePointer<forklift_host_api>, raw: OpaquePointer) {
        self.api = api
        self.raw = raw
    }

    /// Sets the HTTP status (default 200). Throws after the first write or flush, or for a
    /// code outside 100...999.
    public func setStatus(_ code: Int) throws {
        guard api.pointee.response_set_status?(raw, Int32(code)) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot set status \(code): headers were already sent, or it is not a status code")
        }
    }

    /// Adds a header line. Without a Content-Type, the host sends `text/plain; charset=utf-8`.
    /// Throws after the first write or flush, for a name that is not an HTTP token, or for a
    /// value with CR or LF in it (no header injection).
    public func addHeader(_ name: String, _ value: String) throws {
        guard api.pointee.response_add_header?(raw, name, value) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot add header \(name): headers were already sent, or the name or value is invalid")
        }
    }

    /// Appends `bytes` to the body; the first write sends the status and headers. Throws when
    /// the client went away, or after ``finish()``.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard api.pointee.response_write?(raw, bytes.baseAddress, bytes.count) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot write the response: the client went away")
        }
    }

    /// Appends `bytes` to the body, as ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Appends `text`'s UTF-8 bytes to the body, as ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ text: String) throws {
        var copy = text
        try copy.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    /// Sends what is buffered now (a long response in pieces, a progress line), the status
    /// and headers first if they have not gone out. Each flush costs a system call and a
    /// FastCGI record: don't flush after every small write. Throws when the client went away.
    public func flush() throws {
        guard api.pointee.response_flush?(raw) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot flush the response: the client went away")
        }
    }

    /// Completes the response now and lets the handler go on working, as PHP-FPM's
    /// `fastcgi_finish_request()`: the client gets everything written so far and the request
    /// ends for it; slow work after this (statistics, conversions, notifications) costs the
    /// client nothing. Later writes throw, and the body reads as ended. The worker takes its
    /// next request only when `handle` returns, and `request_terminate_timeout` counts until
    /// then. Calling it twice is fine.
    public func finish() throws {
        guard api.pointee.struct_size >= Self.finishEnd, let finish = api.pointee.response_finish else {
            throw PluginError("cannot finish the response early: the host is older than this SDK")
        }
        guard finish(raw) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot finish the response: the client went away")
        }
    }

    /// Where `response_finish` ends in the host's table: a host of ABI 1 before it was appended
    /// has a shorter one.
    private static let finishEnd = UInt32(MemoryLayout<forklift_host_api>.offset(of: \.response_finish)! + MemoryLayout<UnsafeRawPointer>.size)
}
