/// Strings stored back to back in a `SharedArena`, addressed by index through a table of
/// offsets. Reading one copies nothing shared and retains nothing: `withBytes` hands out the
/// bytes in place; `self[i]` makes a String in the worker's own heap.
///
/// ```swift
/// var builder = SharedStringTable.Builder(arena: arena)
/// let apple = try builder.append("apple")      // 0
/// let table = try builder.finish()
/// table[apple]                                  // "apple"
/// ```
///
/// Costs in the arena: the strings' UTF-8 bytes and 16 bytes of offsets per string. Use it
/// for lists looked up by number (a vocabulary, the labels of a model's classes); for lookups
/// by key, ``SharedStringDictionary``. Safe to read from any thread after preload.
public struct SharedStringTable: RandomAccessCollection, BitwiseCopyable, @unchecked Sendable {
    let base: UnsafeRawPointer
    /// Two offsets from `base` per string: where it starts and where it ends (the arena may
    /// hold other data between strings).
    let offsets: SharedArray<UInt64>

    /// Always 0.
    public var startIndex: Int { 0 }
    /// The number of strings.
    public var endIndex: Int { offsets.count / 2 }

    /// String `index`, copied into a new String on the caller's heap; an index out of range
    /// traps.
    public subscript(index: Int) -> String {
        withBytes(index) { String(decoding: $0, as: UTF8.self) }
    }

    /// The UTF-8 bytes of string `index`, in place in shared memory.
    public func withBytes<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = Int(offsets[2 * index]), end = Int(offsets[2 * index + 1])
        return try body(UnsafeRawBufferPointer(start: base + start, count: end - start))
    }

    /// Builds a table during preload: strings go into the arena as they are appended, their
    /// offsets wait on the host's heap until ``finish()`` copies them into the arena.
    public struct Builder {
        let arena: SharedArena
        var offsets: [UInt64] = []

        /// A builder storing into `arena`.
        public init(arena: SharedArena) { self.arena = arena }

        /// Stores `string`; returns its index (0, 1, 2... in the order appended). Throws
        /// ``PluginError`` when the arena is full; traps when it is sealed.
        public mutating func append(_ string: some StringProtocol) throws -> Int {
            var text = String(string)
            let (offset, count) = try text.withUTF8 { bytes -> (Int, Int) in
                let target = try arena.allocate(byteCount: bytes.count, alignment: 1)
                if !bytes.isEmpty { target.copyMemory(from: UnsafeRawBufferPointer(bytes)) }
                return (target.baseAddress! - arena.base, bytes.count)
            }
            offsets += [UInt64(offset), UInt64(offset + count)]
            return offsets.count / 2 - 1
        }

        /// The table of every string appended. Throws ``PluginError`` when the offsets do not
        /// fit in what is left of the arena.
        public func finish() throws -> SharedStringTable {
            SharedStringTable(base: UnsafeRawPointer(arena.base), offsets: try arena.append(contentsOf: offsets))
        }
    }
}
