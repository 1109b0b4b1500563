import Foundation
import ForkliftSystem

/// The client addresses a TCP pool serves (PHP-FPM's `listen.allowed_clients`): IPv4 and IPv6
/// addresses, and ranges as ADDRESS/BITS. Workers check each connection's peer right after
/// accepting it. An IPv4 client of a `[::]` listener arrives as ::ffff:a.b.c.d and is matched
/// as the IPv4 address it is, so `127.0.0.1` admits it on either listener.
public struct AllowedClients: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A network: the address's bytes (4 or 16) and how many leading bits must match.
    public struct Range: Equatable, Hashable, Sendable, CustomStringConvertible {
        public let bytes: [UInt8]
        public let bits: Int
        /// As written in the configuration.
        public let text: String

        public var description: String { text }

        /// Whether `address` (4 or 16 bytes, IPv4-mapped IPv6 already made IPv4) is in it.
        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var left = bits
            for (a, b) in zip(address, bytes) where left > 0 {
                let mask: UInt8 = left >= 8 ? 0xff : ~(0xff >> UInt8(left))
                if a & mask != b & mask { return false }
                left -= 8
            }
            return true
        }
    }

    public let ranges: [Range]

    public var description: String { ranges.map(\.text).joined(separator: ", ") }

    public struct Failure: Error { public let message: String }

    /// "127.0.0.1, ::1, 10.0.0.0/8": one entry per comma.
    public init(parsing entries: [String]) throws(Failure) {
        var ranges: [Range] = []
        for raw in entries {
            let entry = raw.trimmingCharacters(in: .whitespaces)
            guard !entry.isEmpty else { throw Failure(message: "an empty entry (two commas in a row, or one at an end)") }
            ranges.append(try Self.range(entry))
        }
        guard !ranges.isEmpty else { throw Failure(message: "no address: leave the key out to serve every client") }
        self.ranges = ranges
    }

    /// Whether a client at `address` (the peer's 4 or 16 bytes) is served.
    public func allows(_ address: [UInt8]) -> Bool {
        let client = IPAddress.unmapped(address)
        return ranges.contains { $0.contains(client) }
    }

    private static func range(_ entry: String) throws(Failure) -> Range {
        let parts = entry.split(separator: "/", omittingEmptySubsequences: false)
        let expected = "expected an IPv4 or IPv6 address, or a range as ADDRESS/BITS (10.0.0.0/8, fd00::/8), got \"\(entry)\""
        guard parts.count <= 2, var bytes = IPAddress.bytes(String(parts[0])) else { throw Failure(message: expected) }
        let most = bytes.count * 8
        var bits = most
        if parts.count == 2 {
            guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let length = Int(parts[1]), (0...most).contains(length) else {
                throw Failure(message: "\"\(entry)\": a range's BITS are 0 to \(most) for an IPv\(most == 32 ? 4 : 6) address")
            }
            bits = length
        }
        // ::ffff:10.0.0.0/104 is 10.0.0.0/8: compared as IPv4, as the clients are.
        if bytes.count == 16, IPAddress.unmapped(bytes).count == 4, bits >= 96 {
            bytes = Array(bytes.suffix(4))
            bits -= 96
        }
        return Range(bytes: bytes, bits: bits, text: entry)
    }
}
