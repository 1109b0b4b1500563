/// The records a worker writes itself, before libfcgi reads anything: answers to management
/// records, and FCGI_UNKNOWN_ROLE. Every byte is set (libfcgi 2.4.2's own GET_VALUES answer
/// carries uninitialised stack bytes in its padding).
enum ManagementAnswers {
    static let getValuesResult: UInt8 = 10, unknownType: UInt8 = 11, endRequest: UInt8 = 3
    static let unknownRole: UInt8 = 3

    /// FCGI_GET_VALUES_RESULT: one connection at a time, one request per connection, no
    /// multiplexing, for the names asked for that this server knows (each once).
    static func getValues(_ names: [String]) -> [UInt8] {
        let known = ["FCGI_MAX_CONNS": "1", "FCGI_MAX_REQS": "1", "FCGI_MPXS_CONNS": "0"]
        var content: [UInt8] = []
        var seen: Set<String> = []
        for name in names where known[name] != nil && seen.insert(name).inserted {
            let value = known[name]!
            content += [UInt8(name.utf8.count), UInt8(value.utf8.count)] + Array(name.utf8) + Array(value.utf8)
        }
        return record(getValuesResult, requestID: 0, content)
    }

    /// FCGI_UNKNOWN_TYPE for a management record type this server does not know.
    static func unknown(type: UInt8) -> [UInt8] {
        record(unknownType, requestID: 0, [type, 0, 0, 0, 0, 0, 0, 0])
    }

    /// FCGI_END_REQUEST with FCGI_UNKNOWN_ROLE.
    static func unknownRole(requestID: UInt16) -> [UInt8] {
        record(endRequest, requestID: requestID, [0, 0, 0, 0, unknownRole, 0, 0, 0])
    }

    static func record(_ type: UInt8, requestID: UInt16, _ content: [UInt8]) -> [UInt8] {
        let padding = (8 - content.count % 8) % 8
        return [1, type, UInt8(requestID >> 8), UInt8(requestID & 0xFF), UInt8(content.count >> 8), UInt8(content.count & 0xFF), UInt8(padding), 0]
            + content + [UInt8](repeating: 0, count: padding)
    }
}
