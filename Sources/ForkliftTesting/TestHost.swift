import CForkliftABI
import ForkliftClient

#if canImport(Glibc)
import Glibc
#endif

/// The host's side of the plugin ABI, for tests: the same C table a Forklift worker gives a
/// plugin (`forklift_host_api`), backed by a request built in memory and a response that is
/// recorded instead of sent. Its rules are the worker's: status and headers until the first
/// write, header names must be tokens and values free of CR/LF, a body limit answered with
/// FORKLIFT_BODY_TOO_LARGE, writes refused after `response_finish`.
final class TestHost {
    /// The table handed to the plugin; `host_context` points back here.
    let api: UnsafeMutablePointer<forklift_host_api>
    private(set) var logLines: [PluginLogLine] = []
    private(set) var readOnlyRegions: [(start: UnsafeMutableRawPointer, length: Int, label: String)] = []

    init() {
        api = .allocate(capacity: 1)
        api.initialize(to: Self.table())
        api.pointee.host_context = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { api.deallocate() }

    fileprivate func record(_ line: PluginLogLine) { logLines.append(line) }
    fileprivate func addRegion(_ start: UnsafeMutableRawPointer, _ length: Int, _ label: String) { readOnlyRegions.append((start, length, label)) }

    static func from(_ api: UnsafePointer<forklift_host_api>?) -> TestHost? {
        guard let context = api?.pointee.host_context else { return nil }
        return Unmanaged<TestHost>.fromOpaque(context).takeUnretainedValue()
    }

    private static func table() -> forklift_host_api {
        var api = forklift_host_api()
        api.abi_version = FORKLIFT_ABI_VERSION
        api.struct_size = UInt32(MemoryLayout<forklift_host_api>.size)
        api.log = { api, level, message, length in
            guard let host = TestHost.from(api), let message else { return }
            let text = String(decoding: UnsafeRawBufferPointer(start: message, count: length), as: UTF8.self)
            host.record(PluginLogLine(level: PluginLogLine.Level(rawValue: Int(level)) ?? .error, message: text))
        }
        api.request_param = { request, name in
            guard let request, let name else { return nil }
            return TestRequestState.from(request).param(String(cString: name))
        }
        api.request_path = { request in
            guard let request else { return nil }
            return UnsafePointer(TestRequestState.from(request).path)
        }
        api.request_params = { request in
            guard let request else { return nil }
            return UnsafePointer(TestRequestState.from(request).envp)
        }
        api.request_read = { request, buffer, capacity in
            guard let request, let buffer else { return -1 }
            return TestRequestState.from(request).read(into: buffer, capacity: capacity)
        }
        api.response_set_status = { response, status in
            guard let response else { return Int32(FORKLIFT_FAILED) }
            return TestResponseState.from(response).setStatus(Int(status)) ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.response_add_header = { response, name, value in
            guard let response, let name, let value else { return Int32(FORKLIFT_FAILED) }
            return TestResponseState.from(response).addHeader(String(cString: name), String(cString: value)) ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.response_write = { response, data, length in
            guard let response else { return Int32(FORKLIFT_FAILED) }
            return TestResponseState.from(response).write(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length)) ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.response_flush = { response in
            guard let response else { return Int32(FORKLIFT_FAILED) }
            return TestResponseState.from(response).flush() ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        api.register_read_only_region = { api, start, length, label in
            guard let host = TestHost.from(api), let start else { return Int32(FORKLIFT_FAILED) }
            host.addRegion(start, length, label.map { String(cString: $0) } ?? "unnamed region")
            return Int32(FORKLIFT_OK)
        }
        api.response_finish = { response in
            guard let response else { return Int32(FORKLIFT_FAILED) }
            return TestResponseState.from(response).finish() ? Int32(FORKLIFT_OK) : Int32(FORKLIFT_FAILED)
        }
        return api
    }
}

/// One request as the ABI hands it out: C strings that live as long as the request.
final class TestRequestState {
    private let pairs: [(String, String)]
    /// "NAME=VALUE" strings and a NULL, as libfcgi's envp.
    let envp: UnsafeMutablePointer<UnsafePointer<CChar>?>
    private let values: [String: UnsafeMutablePointer<CChar>]
    let path: UnsafeMutablePointer<CChar>
    private let body: [UInt8]
    private let bodyLimit: Int
    private var offset = 0
    private var exceeded = false
    /// After an early finish the rest of the body was read away (as the worker does).
    var drained = false

    init(_ request: PluginRequest, bodyLimit: Int) {
        pairs = request.params
        envp = .allocate(capacity: pairs.count + 1)
        var values: [String: UnsafeMutablePointer<CChar>] = [:]
        for (index, pair) in pairs.enumerated() {
            let entry = strdup(pair.0 + "=" + pair.1)!
            envp[index] = UnsafePointer(entry)
            // FCGX_GetParam finds the first of a name; so does this.
            if values[pair.0] == nil { values[pair.0] = entry + pair.0.utf8.count + 1 }
        }
        envp[pairs.count] = nil
        self.values = values
        let first = Dictionary(pairs.reversed(), uniquingKeysWith: { _, earlier in earlier })
        path = strdup(RequestPath.resolve { first[$0] })
        body = request.body
        self.bodyLimit = bodyLimit
    }

    deinit {
        for index in 0..<pairs.count { free(UnsafeMutablePointer(mutating: envp[index])) }
        envp.deallocate()
        free(path)
    }

    func param(_ name: String) -> UnsafePointer<CChar>? { values[name].map { UnsafePointer($0) } }

    /// The worker's rules: 0 at the end, FORKLIFT_BODY_TOO_LARGE past the pool's limit.
    func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
        if exceeded { return Int(FORKLIFT_BODY_TOO_LARGE) }
        if drained { return 0 }
        let count = min(capacity, body.count - offset)
        body[offset..<(offset + count)].withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: count) }
        offset += count
        if bodyLimit > 0 && offset > bodyLimit {
            exceeded = true
            return Int(FORKLIFT_BODY_TOO_LARGE)
        }
        return count
    }

    /// Bytes of the body the plugin read.
    var bodyBytesRead: Int { offset }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer) -> TestRequestState {
        Unmanaged<TestRequestState>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}

/// The response a plugin writes, recorded.
final class TestResponseState {
    var status = 200
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    var headersSent = false
    var finishedEarly = false
    /// Body bytes written before the handler finished early.
    var bytesAtFinish: Int?
    /// How many flushes (headers and what was written went out).
    var flushes = 0
    let request: TestRequestState

    init(request: TestRequestState) { self.request = request }

    func setStatus(_ code: Int) -> Bool {
        guard !headersSent, (100...999).contains(code) else { return false }
        status = code
        return true
    }

    func addHeader(_ name: String, _ value: String) -> Bool {
        guard !headersSent, HeaderName.isValid(name), HeaderName.isValidValue(value) else { return false }
        headers.append((name, value))
        return true
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !finishedEarly else { return false }
        headersSent = true
        body += bytes
        return true
    }

    func flush() -> Bool {
        guard !finishedEarly else { return false }
        headersSent = true
        flushes += 1
        return true
    }

    func finish() -> Bool {
        if finishedEarly { return true }
        headersSent = true
        finishedEarly = true
        bytesAtFinish = body.count
        request.drained = true
        return true
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer) -> TestResponseState {
        Unmanaged<TestResponseState>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}

