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
///
/// Costs in the arena: the keys' and values' UTF-8 bytes, 24 bytes per entry and 8 to 16
/// bytes of hash slots per entry (twice the entries at least, rounded up to a power of two).
/// A lookup hashes the key's bytes and compares them with `memcmp`; keys are compared byte
/// for byte, so "é" precomposed and decomposed are different keys. Safe to read from any
/// thread after preload.
public struct SharedStringDictionary: BitwiseCopyable, @unchecked Sendable {
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

    /// The value for `key`, copied into a new String on the caller's heap; nil when absent.
    public subscript(key: some StringProtocol) -> String? {
        withValue(for: key) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the value's bytes, in place in the shared memory; nil (and `body` not
    /// called) when `key` is absent.
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
    ///
    /// Keys and values go into the arena as they are added; the entries wait in an ordinary
    /// array on the host's heap until ``finish()`` copies them, with the hash index, into the
    /// arena. Drop the builder afterwards.
    public struct Builder {
        let arena: SharedArena
        var entries: [Entry] = []

        /// A builder storing into `arena`. `expectedCount` reserves room for that many
        /// entries up front (a hint, not a limit).
        public init(arena: SharedArena, expectedCount: Int = 0) {
            self.arena = arena
            entries.reserveCapacity(expectedCount)
        }

        /// Stores `key` and `value` in the arena. Throws ``PluginError`` when the arena is full
        /// or either is 4 GiB or more; traps when the arena is sealed.
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

        /// Builds the hash index and returns the dictionary. Throws ``PluginError`` when the
        /// entries and the index do not fit in what is left of the arena.
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
