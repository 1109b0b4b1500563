import CForkliftABI

/// The response to one request, valid during `handle` only. Status and headers are sent
/// with the first body write or flush; after that they can no longer change.
public final class Response {
    let api: UnsafePointer<forklift_host_api>
    let raw: OpaquePointer

    init(api: UnsafePointer<forklift_host_api>, raw: OpaquePointer) {
        self.api = api
        self.raw = raw
    }

    /// Sets the HTTP status (default 200).
    public func setStatus(_ code: Int) throws {
        guard api.pointee.response_set_status?(raw, Int32(code)) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot set status \(code): headers were already sent, or it is not a status code")
        }
    }

    /// Adds a header line. Without a Content-Type, the host sends `text/plain; charset=utf-8`.
    public func addHeader(_ name: String, _ value: String) throws {
        guard api.pointee.response_add_header?(raw, name, value) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot add header \(name): headers were already sent, or the name or value is invalid")
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard api.pointee.response_write?(raw, bytes.baseAddress, bytes.count) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot write the response: the client went away")
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    public func write(_ text: String) throws {
        var copy = text
        try copy.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    /// Sends what is buffered now (a long response in pieces, a progress line).
    public func flush() throws {
        guard api.pointee.response_flush?(raw) == Int32(FORKLIFT_OK) else {
            throw PluginError("cannot flush the response: the client went away")
        }
    }
}
