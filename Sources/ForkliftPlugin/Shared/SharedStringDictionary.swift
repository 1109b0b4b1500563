/// A read-only string → string dictionary that lives in a `SharedArena`: an open-addressing
/// hash index over raw bytes (FNV-1a, linear probing), built during preload. Lookups read
/// only arena memory, so they never un-share a page, unlike `[String: String]`.
///
/// ```swift
/// var builder = SharedStringDictionary.Builder(arena: arena, expectedCount: 100_000)
/// try builder.add(key: "apple", value: "a fruit")
/// let dictionary = try builder.finish()
/// dictionary["apple"]            // "a fruit" (a new String in the worker's own heap)
/// dictionary.withValue(for: "apple") { bytes in ... }   // no String at all
/// ```
public struct SharedStringDictionary: @unchecked Sendable {
    struct Entry: BitwiseCopyable {
        var keyOffset: UInt64
        var valueOffset: UInt64
        var keyLength: UInt32
        var valueLength: UInt32
    }

    let base: UnsafeRawPointer
    let entries: SharedArray<Entry>
    /// Entry index + 1 per slot; 0 marks an empty slot. Power-of-two count.
    let slots: SharedArray<UInt32>

    /// Entries added (a key added twice counts twice; lookups find the last value).
    public var count: Int { entries.count }

    /// The value for `key`, copied into a new String.
    public subscript(key: some StringProtocol) -> String? {
        withValue(for: key) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the value's bytes, in place in the shared memory.
    public func withValue<R>(for key: some StringProtocol, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        var key = String(key)
        return try key.withUTF8 { keyBytes -> R? in
            guard let entry = find(UnsafeRawBufferPointer(keyBytes)) else { return nil }
            return try body(UnsafeRawBufferPointer(start: base + Int(entry.valueOffset), count: Int(entry.valueLength)))
        }
    }

    func find(_ key: UnsafeRawBufferPointer) -> Entry? {
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: Self.hash(key)) & mask
        while true {
            let index = slots[slot]
            if index == 0 { return nil }
            let entry = entries[Int(index - 1)]
            if Int(entry.keyLength) == key.count,
               memcmp(base + Int(entry.keyOffset), key.baseAddress!, key.count) == 0 {
                return entry
            }
            slot = (slot + 1) & mask
        }
    }

    /// FNV-1a: deterministic in every process (Swift's Hasher is seeded per process).
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return hash
    }

    /// Builds a dictionary during preload. Keys must be unique; the last value of a repeated
    /// key wins.
    public struct Builder {
        let arena: SharedArena
        var entries: [Entry] = []

        public init(arena: SharedArena, expectedCount: Int = 0) {
            self.arena = arena
            entries.reserveCapacity(expectedCount)
        }

        public mutating func add(key: some StringProtocol, value: some StringProtocol) throws {
            let keyOffset = try store(String(key))
            let valueOffset = try store(String(value))
            entries.append(Entry(keyOffset: UInt64(keyOffset.offset), valueOffset: UInt64(valueOffset.offset),
                                 keyLength: UInt32(keyOffset.length), valueLength: UInt32(valueOffset.length)))
        }

        private func store(_ text: String) throws -> (offset: Int, length: Int) {
            guard text.utf8.count < Int(UInt32.max) else { throw PluginError("a key or value of 4 GiB or more does not fit a SharedStringDictionary") }
            var text = text
            return try text.withUTF8 { bytes in
                let target = try arena.allocate(byteCount: max(1, bytes.count), alignment: 1)
                target.copyMemory(from: UnsafeRawBufferPointer(bytes))
                return (target.baseAddress! - arena.base, bytes.count)
            }
        }

        public func finish() throws -> SharedStringDictionary {
            var slotCount = 2
            while slotCount < entries.count * 2 { slotCount <<= 1 }
            var slots = [UInt32](repeating: 0, count: slotCount)
            let base = UnsafeRawPointer(arena.base)
            for (index, entry) in entries.enumerated() {
                let key = UnsafeRawBufferPointer(start: base + Int(entry.keyOffset), count: Int(entry.keyLength))
                var slot = Int(truncatingIfNeeded: SharedStringDictionary.hash(key)) & (slotCount - 1)
                while slots[slot] != 0 {
                    let other = entries[Int(slots[slot] - 1)]
                    if Int(other.keyLength) == key.count, memcmp(base + Int(other.keyOffset), key.baseAddress!, key.count) == 0 { break }
                    slot = (slot + 1) & (slotCount - 1)
                }
                slots[slot] = UInt32(index + 1)
            }
            return SharedStringDictionary(base: base, entries: try arena.append(contentsOf: entries),
                                          slots: try arena.append(contentsOf: slots))
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
