import CForkliftSys

/// Reads the FastCGI records at the start of a request, as the worker read them, before
/// libfcgi reads them: a check before it allocates, not a second protocol implementation.
/// libfcgi still parses and serves the request; this only says whether what has arrived is a
/// complete, well-formed beginning within the limits, so that libfcgi's blocking reads of the
/// request's records never wait on a client, and never see a length that would make it
/// allocate gigabytes (a PARAMS length of 0x7ffffffe aborts libfcgi 2.4.2; CVE-2025-23016 is
/// an overflow in that code) or a management record that smashes its stack (a GET_VALUES
/// naming FCGI_MPXS_CONNS four times overflows its 64-byte answer buffer).
///
/// Management records (request id 0) found first are answered by the worker itself, never
/// passed to libfcgi.
struct RecordScanner {
    enum Outcome: Equatable {
        /// Everything up to the end of the request's params has arrived and is well-formed:
        /// libfcgi can read it without waiting. `stdinEnded`: the empty STDIN record that ends
        /// the request's body came right after them, so the request has no body and the client
        /// has sent all of it (nginx sends it with the params; cgi-fcgi only once it has read
        /// its own standard input).
        case complete(stdinEnded: Bool)
        /// More is needed.
        case incomplete
        /// A management record of `length` bytes (header, content, padding) comes first.
        case management(ManagementRecord, length: Int)
        /// BEGIN_REQUEST with a role this server does not play.
        case unknownRole(requestID: UInt16, role: UInt16)
        /// The params (names and values with their lengths) exceed `maxParamsSize`.
        case tooLarge(Int)
        case malformed(String)
    }

    enum ManagementRecord: Equatable {
        /// GET_VALUES: the names asked for.
        case getValues([String])
        /// Any other management type: answered with FCGI_UNKNOWN_TYPE.
        case unknown(type: UInt8)
    }

    static let headerLength = 8
    static let version: UInt8 = 1
    static let beginRequest: UInt8 = 1, abortRequest: UInt8 = 2, params: UInt8 = 4, stdin: UInt8 = 5, getValues: UInt8 = 9
    static let responder: UInt16 = 1, authorizer: UInt16 = 2, filter: UInt16 = 3

    let maxParamsSize: Int

    /// Looks at `bytes`, the start of what the connection has sent for this request.
    func scan(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        var offset = 0
        var requestID: UInt16?
        var params = ParamsParser(limit: maxParamsSize)
        while true {
            guard bytes.count - offset >= Self.headerLength else { return .incomplete }
            let version = bytes[offset], type = bytes[offset + 1]
            let id = UInt16(bytes[offset + 2]) << 8 | UInt16(bytes[offset + 3])
            let contentLength = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            let recordLength = Self.headerLength + contentLength + Int(bytes[offset + 6])
            guard version == Self.version else { return .malformed("FastCGI version \(version), not 1") }
            if id == 0 {
                // A management record: only before the request begins.
                guard requestID == nil else { return .malformed("a management record (type \(type)) in the middle of a request") }
                guard bytes.count - offset >= recordLength else { return .incomplete }
                guard offset == 0 else { return .malformed("two requests' records interleaved") }
                let content = UnsafeRawBufferPointer(rebasing: bytes[(offset + Self.headerLength)..<(offset + Self.headerLength + contentLength)])
                guard type == Self.getValues else { return .management(.unknown(type: type), length: recordLength) }
                var names = ParamsParser(limit: 1024, keepsNames: true)
                switch names.feed(content) {
                case .ok: break
                case .tooLarge: return .malformed("a GET_VALUES record of more than 1024 bytes")
                case .malformed(let reason): return .malformed("GET_VALUES: \(reason)")
                }
                guard names.isAtPairBoundary else { return .malformed("GET_VALUES: a name cut short") }
                return .management(.getValues(names.names), length: recordLength)
            }
            guard bytes.count - offset >= Self.headerLength + contentLength || type == Self.params else { return .incomplete }
            switch type {
            case Self.beginRequest:
                guard requestID == nil else { return .malformed("a second BEGIN_REQUEST") }
                guard contentLength == 8 else { return .malformed("BEGIN_REQUEST of \(contentLength) bytes, not 8") }
                let role = UInt16(bytes[offset + 8]) << 8 | UInt16(bytes[offset + 9])
                guard role == Self.responder || role == Self.authorizer || role == Self.filter else {
                    return .unknownRole(requestID: id, role: role)
                }
                requestID = id
            case Self.params:
                guard let expected = requestID else { return .malformed("PARAMS before BEGIN_REQUEST") }
                guard id == expected else { return .malformed("PARAMS of request \(id) within request \(expected)") }
                let available = min(contentLength, bytes.count - offset - Self.headerLength)
                let content = UnsafeRawBufferPointer(rebasing: bytes[(offset + Self.headerLength)..<(offset + Self.headerLength + available)])
                switch params.feed(content) {
                case .ok: break
                case .tooLarge: return .tooLarge(maxParamsSize)
                case .malformed(let reason): return .malformed("PARAMS: \(reason)")
                }
                guard available == contentLength else { return .incomplete }
                if contentLength == 0 {
                    // The end of the params stream.
                    guard params.isAtPairBoundary else { return .malformed("PARAMS: the stream ends in the middle of a name or value") }
                    return .complete(stdinEnded: Self.emptyStdin(in: bytes, at: offset + recordLength, requestID: expected))
                }
            case Self.abortRequest:
                return .malformed("the client aborted the request before its params were complete")
            default:
                return .malformed("a record of type \(type) before the end of the params")
            }
            guard bytes.count - offset >= recordLength else { return .incomplete }
            offset += recordLength
        }
    }

    /// Whether the record at `offset` is the request's empty STDIN (the end of its body).
    private static func emptyStdin(in bytes: UnsafeRawBufferPointer, at offset: Int, requestID: UInt16) -> Bool {
        guard bytes.count - offset >= headerLength else { return false }
        return bytes[offset] == version && bytes[offset + 1] == stdin
            && (UInt16(bytes[offset + 2]) << 8 | UInt16(bytes[offset + 3])) == requestID
            && bytes[offset + 4] == 0 && bytes[offset + 5] == 0
    }
}

/// The name-value pairs of a PARAMS stream (or a GET_VALUES record), fed as it arrives, record
/// by record: checks each pair's declared lengths against what is left of the limit before
/// anything would be allocated for it. Pairs lying whole in a record are skipped in one pass
/// in C (`forklift_params_skip_whole`); a pair cut by a record's end has its lengths read byte
/// by byte here, its name and value skipped in bulk.
struct ParamsParser {
    enum Result: Equatable { case ok, tooLarge, malformed(String) }

    let limit: Int
    /// Keep the names (GET_VALUES), not for PARAMS.
    let keepsNames: Bool
    /// Bytes consumed so far.
    private(set) var total = 0
    private(set) var names: [String] = []
    /// A 4-byte length being read: its bytes so far (0: none), and their value.
    private var lengthBytesRead = 0
    private var partialLength = 0
    private var nameLength: Int?
    private var nameLeft = 0
    private var valueLeft = 0
    private var name: [UInt8] = []

    init(limit: Int, keepsNames: Bool = false) {
        self.limit = limit
        self.keepsNames = keepsNames
    }

    var isAtPairBoundary: Bool { lengthBytesRead == 0 && nameLength == nil && nameLeft == 0 && valueLeft == 0 }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Result {
        var index = 0
        if !keepsNames && isAtPairBoundary, let base = bytes.baseAddress, total <= limit {
            // Pairs that lie whole in this record (nearly all of them), in C: in Swift a pair
            // cost 60-100 instructions (20 params of nginx's, 1,200-2,000 a request).
            var consumed = total
            let tooLarge = forklift_params_skip_whole(base.assumingMemoryBound(to: UInt8.self), bytes.count, &index, &consumed, limit) != 0
            total = consumed
            if tooLarge { return .tooLarge }
        }
        while index < bytes.count {
            if nameLeft > 0 || valueLeft > 0 {
                let step: Int
                if keepsNames && nameLeft > 0 {
                    step = min(nameLeft, bytes.count - index)
                    name += bytes[index..<(index + step)]
                    nameLeft -= step
                } else {
                    // Name and value skipped in one step.
                    step = min(nameLeft + valueLeft, bytes.count - index)
                    let fromName = min(step, nameLeft)
                    nameLeft -= fromName
                    valueLeft -= step - fromName
                }
                if nameLeft == 0 && valueLeft == 0 { finishPair() }
                index += step
                total += step
                continue
            }
            // Lengths byte by byte: a pair cut by the record's end (its lengths may be too), and
            // GET_VALUES' names.
            let byte = bytes[index]
            index += 1
            total += 1
            // A length is 1 byte (high bit clear) or 4 (high bit set, then 31 bits big-endian).
            let length: Int
            if lengthBytesRead == 0 && byte & 0x80 == 0 {
                length = Int(byte)
            } else {
                partialLength = lengthBytesRead == 0 ? Int(byte & 0x7F) : partialLength << 8 | Int(byte)
                lengthBytesRead += 1
                guard lengthBytesRead == 4 else { continue }
                lengthBytesRead = 0
                length = partialLength
            }
            guard let first = nameLength else {
                nameLength = length
                continue
            }
            // Both lengths known: the pair must fit in what is left of the limit.
            guard first <= limit - total, length <= limit - total - first else { return .tooLarge }
            nameLength = nil
            nameLeft = first
            valueLeft = length
            if first == 0 && length == 0 { finishPair() }
        }
        return total > limit ? .tooLarge : .ok
    }

    private mutating func finishPair() {
        guard keepsNames else { return }
        names.append(String(decoding: name, as: UTF8.self))
        name.removeAll(keepingCapacity: true)
    }
}
