/// FastCGI 1.0 records as a client writes them (the specification's section 3 and 5).
public enum FastCGIRecords {
    public static let version: UInt8 = 1

    public enum RecordType: UInt8, Sendable {
        case beginRequest = 1, abortRequest = 2, endRequest = 3, params = 4, stdin = 5, stdout = 6, stderr = 7,
             data = 8, getValues = 9, getValuesResult = 10, unknownType = 11
    }

    /// FCGI_RESPONDER, the role Forklift serves.
    public static let responder: UInt16 = 1

    /// One record with request id `id`, padded to a multiple of 8 bytes.
    public static func record(_ type: RecordType, _ content: some Collection<UInt8>, id: UInt16 = 1) -> [UInt8] {
        precondition(content.count <= 65535, "a record holds at most 65535 bytes")
        let padding = (8 - content.count % 8) % 8
        var out: [UInt8] = [version, type.rawValue, UInt8(id >> 8), UInt8(id & 0xFF), UInt8(content.count >> 8), UInt8(content.count & 0xFF), UInt8(padding), 0]
        out.reserveCapacity(8 + content.count + padding)
        out += content
        out += repeatElement(0, count: padding)
        return out
    }

    /// BEGIN_REQUEST for the responder role; `keepConnection` sets FCGI_KEEP_CONN.
    public static func beginRequest(keepConnection: Bool, role: UInt16 = responder, id: UInt16 = 1) -> [UInt8] {
        record(.beginRequest, [UInt8(role >> 8), UInt8(role & 0xFF), keepConnection ? 1 : 0, 0, 0, 0, 0, 0], id: id)
    }

    /// A stream split into records of at most 65535 bytes, closed by an empty record.
    public static func stream(_ type: RecordType, _ bytes: [UInt8], id: UInt16 = 1) -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + 65535, bytes.count)
            out += record(type, bytes[offset..<end], id: id)
            offset = end
        }
        return out + record(type, [], id: id)
    }

    /// A name or value length: one byte below 128, else four with the high bit set.
    public static func length(_ n: Int) -> [UInt8] {
        n < 128 ? [UInt8(n)] : [UInt8((n >> 24) & 0x7F) | 0x80, UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
    }

    /// Name-value pairs as PARAMS and GET_VALUES carry them.
    public static func pairs(_ pairs: [(String, String)]) -> [UInt8] {
        var encoded: [UInt8] = []
        for (name, value) in pairs {
            encoded += length(name.utf8.count) + length(value.utf8.count)
            encoded += name.utf8
            encoded += value.utf8
        }
        return encoded
    }

    /// A whole request: BEGIN_REQUEST, PARAMS, STDIN.
    public static func request(params: [(String, String)], body: [UInt8], keepConnection: Bool) -> [UInt8] {
        beginRequest(keepConnection: keepConnection) + stream(.params, pairs(params)) + stream(.stdin, body)
    }
}

/// A record as read from a server: its type (a `FastCGIRecords.RecordType` raw value, or one
/// this client does not know), request id, content without the padding, and how long the
/// padding was.
public struct FastCGIRecord: Sendable {
    public let type: UInt8
    public let requestID: UInt16
    public let content: [UInt8]
    public let paddingLength: Int
}
