import ForkliftIPC

/// The first page of a keyed data set's memfd: what the set is, so that a generation that
/// inherits it can check, before it trusts a byte, that it is what its plugin asks for.
///
/// Layout (little endian): magic, layout version, the plugin's format, the address it must
/// be mapped at, the file size, the bytes used, the root's length, the identity
/// ("instance\tplugin\tkey"), the root's bytes, and an FNV-1a checksum of all of it.
struct DataSetHeader: Equatable {
    static let size = 4096
    static let magic: UInt64 = 0x3141_5441_444C_4B46 // "FKLDATA1"
    /// Of this header and of how a set is mapped; another value is another forklift's set.
    static let layoutVersion: UInt32 = 1
    static let rootCapacity = 2048
    static let rootOffset = 2048
    static let checksumOffset = size - 8

    var identity: DataSetIdentity
    var format: UInt32
    var placement: DataSetPlacement
    var used: Int
    var root: [UInt8]

    var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.size)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { out.replaceSubrange(offset..<offset + $0.count, with: $0) }
        }
        put(Self.magic, at: 0)
        put(Self.layoutVersion, at: 8)
        put(format, at: 12)
        put(placement.address, at: 16)
        put(UInt64(placement.size), at: 24)
        put(UInt64(used), at: 32)
        put(UInt32(root.count), at: 40)
        let text = Array(Self.identityText(identity).utf8)
        put(UInt32(text.count), at: 44)
        out.replaceSubrange(48..<48 + text.count, with: text)
        out.replaceSubrange(Self.rootOffset..<Self.rootOffset + root.count, with: root)
        put(Self.checksum(out), at: Self.checksumOffset)
        return out
    }

    /// Reads a header back, or says why these bytes are none.
    static func parse(_ bytes: [UInt8]) -> Result<DataSetHeader, Mismatch> {
        guard bytes.count >= size else { return .failure(Mismatch("its header is \(bytes.count) bytes, expected \(size)")) }
        func get<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
            bytes[offset..<offset + MemoryLayout<T>.size].withUnsafeBytes { T(littleEndian: $0.loadUnaligned(as: T.self)) }
        }
        guard get(UInt64.self, at: 0) == magic else { return .failure(Mismatch("it has no forklift data header")) }
        let version = get(UInt32.self, at: 8)
        guard version == layoutVersion else { return .failure(Mismatch("its header is of layout \(version), this forklift reads \(layoutVersion)")) }
        guard get(UInt64.self, at: checksumOffset) == checksum(Array(bytes.prefix(size))) else {
            return .failure(Mismatch("its header's checksum is wrong"))
        }
        let rootLength = Int(get(UInt32.self, at: 40)), textLength = Int(get(UInt32.self, at: 44))
        guard rootLength <= rootCapacity, textLength <= rootOffset - 48 else { return .failure(Mismatch("its header's lengths are out of range")) }
        let fields = String(decoding: bytes[48..<48 + textLength], as: UTF8.self).split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count == 3 else { return .failure(Mismatch("its header names no plugin and key")) }
        return .success(DataSetHeader(
            identity: DataSetIdentity(instance: String(fields[0]), plugin: String(fields[1]), key: String(fields[2])),
            format: get(UInt32.self, at: 12),
            placement: DataSetPlacement(address: get(UInt64.self, at: 16), size: Int(get(UInt64.self, at: 24))),
            used: Int(get(UInt64.self, at: 32)),
            root: Array(bytes[rootOffset..<rootOffset + rootLength])))
    }

    static func identityText(_ identity: DataSetIdentity) -> String {
        "\(identity.instance)\t\(identity.plugin)\t\(identity.key)"
    }

    /// FNV-1a of the page, the checksum's own 8 bytes taken as zero.
    static func checksum(_ page: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for (index, byte) in page.enumerated() {
            hash = (hash ^ UInt64(index >= checksumOffset && index < checksumOffset + 8 ? 0 : byte)) &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}

/// Why an inherited set is not used: the host logs it and builds the data afresh.
struct Mismatch: Error, Equatable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
