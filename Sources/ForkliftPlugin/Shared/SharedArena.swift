import CForkliftABI

#if canImport(Glibc)
import Glibc
#endif

/// Preloaded data that stays shared by every worker: a flat, read-only memory arena.
///
/// Fill it in your plugin's initialiser (the preload hook, in the host, before any fork). When
/// the initialiser returns, Forklift seals every arena read-only (`mprotect`), so a write in a
/// worker faults loudly — the worker dies, the log says which plugin wrote where — instead of
/// silently copying pages. Workers share the pages copy-on-write and, as nothing writes them,
/// never copy one.
///
/// Why not Swift arrays of classes or `[String: String]`? Every retain and release writes an
/// object header, so merely *reading* class instances or heap strings in a worker un-shares the
/// pages they sit on (measured: 100 k lookups in a `[String: String]` cost 390 MB per worker).
/// An arena holds plain bytes and offsets, no references: reading it writes nothing.
///
/// The memory is anonymous, reserved up front (`capacity` costs address space, not memory),
/// and advised to use transparent huge pages, which keeps fork fast with big datasets.
///
/// ```swift
/// let arena = try SharedArena(capacity: 2 << 30, label: "dictionary")   // 2 GiB of address space
/// let scores = try arena.append(contentsOf: loadScores())              // a SharedArray<Float>
/// ```
///
/// Create and fill arenas in the initialiser or in `warmUp()`, from that one thread. An arena
/// is never unmapped, so the views made from it (``SharedArray``, ``SharedStringTable``,
/// ``SharedStringDictionary``) stay valid for the life of the process even when the arena
/// object itself is gone. One created in a worker is that worker's private memory, never
/// sealed. <doc:SharedPreloadedMemory> has the whole story.
public final class SharedArena {
    /// Names the arena in logs and in the crash line of a worker that writes to it.
    public let label: String
    /// The bytes reserved: the capacity asked for, rounded up to whole 4 KiB pages.
    public let capacity: Int
    let base: UnsafeMutableRawPointer
    /// The bytes handed out so far, alignment padding included.
    public private(set) var used = 0
    /// True once Forklift made the arena read-only, when the preload hook returned; from then
    /// on ``allocate(byteCount:alignment:)`` traps, and a write into its memory kills the process.
    public private(set) var isSealed = false
    /// False for the memory of keyed data (``PluginContext/sharedData(key:format:capacity:label:build:)``),
    /// which the host maps and seals.
    private let sealsItself: Bool

    /// Reserves `capacity` bytes. `label` names the arena in logs and crash messages.
    ///
    /// Throws ``PluginError`` when the address space cannot be had (`mmap` fails: a
    /// `ulimit -v`, or a capacity beyond what the machine can map); a capacity of 0 or less
    /// traps. Unused capacity costs nothing but address space: reserve generously.
    public init(capacity: Int, label: String = "arena") throws {
        precondition(capacity > 0, "an arena needs a capacity")
        let size = (capacity + 4095) & ~4095
        let memory = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let memory, memory != MAP_FAILED else {
            throw PluginError("shared arena \(label): cannot reserve \(capacity) bytes: \(String(cString: strerror(errno)))")
        }
        _ = madvise(memory, size, MADV_HUGEPAGE)
        self.label = label
        self.capacity = size
        base = memory
        sealsItself = true
        SharedRegions.register(self)
    }

    /// An arena over memory the host mapped for keyed data: filled like any other, sealed by
    /// the host (``PluginContext/sharedData(key:format:capacity:label:build:)``).
    init(hostMemory: UnsafeMutableRawPointer, capacity: Int, label: String) {
        self.label = label
        self.capacity = capacity
        base = hostMemory
        sealsItself = false
    }

    /// Reserves `byteCount` bytes aligned to `alignment` and returns them for filling.
    /// Only during preload.
    ///
    /// Throws ``PluginError`` when they do not fit in what is left of the capacity. Traps when
    /// the arena is sealed, for a negative count, or for an alignment that is not a power of
    /// two. The bytes are zero until written. Keep offsets from the arena's start, not
    /// pointers to other memory: what points outside the arena un-shares or dangles in a worker.
    public func allocate(byteCount: Int, alignment: Int = 16) throws -> UnsafeMutableRawBufferPointer {
        precondition(!isSealed, "shared arena \(label) is sealed: it was filled during preload and is read-only now")
        precondition(byteCount >= 0, "a negative byte count")
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two, got \(alignment)")
        let start = (used + alignment - 1) & ~(alignment - 1)
        guard start + byteCount <= capacity else {
            throw PluginError("shared arena \(label) is full: \(byteCount) more bytes do not fit in \(capacity)")
        }
        used = start + byteCount
        return UnsafeMutableRawBufferPointer(start: base + start, count: byteCount)
    }

    /// Copies `values` into the arena; the view reads them without touching anything else.
    ///
    /// `Element` must be `BitwiseCopyable`: integers, floats, and structs or tuples of them.
    /// No class, no `String`, no `Array`: those are references, and reading them would write
    /// reference counts. Throws ``PluginError`` when the arena is full.
    public func append<C: Collection>(contentsOf values: C) throws -> SharedArray<C.Element> where C.Element: BitwiseCopyable {
        let buffer = try allocate(byteCount: max(1, values.count * MemoryLayout<C.Element>.stride),
                                  alignment: MemoryLayout<C.Element>.alignment)
        let typed = buffer.bindMemory(to: C.Element.self)
        _ = typed.initialize(from: values)
        return SharedArray(start: UnsafePointer(typed.baseAddress!), count: values.count)
    }

    /// Makes the arena read-only. Forklift calls it when your preload returns.
    func seal() {
        guard !isSealed else { return }
        isSealed = true
        if sealsItself { mprotect(base, capacity, PROT_READ) }
    }
}

/// A fixed-size array of trivial values inside an arena or a mapped file. No references, no
/// reference counting: reading it in a worker leaves every page shared.
///
/// Made by ``SharedArena/append(contentsOf:)`` or ``MappedFile/array(of:)``. A
/// `RandomAccessCollection` indexed from 0, so `sorted()`, `map` or a binary search work as on
/// an `Array`, but what they return is an ordinary array on the worker's heap. Read-only, and
/// safe to read from any thread (the memory never changes after preload).
public struct SharedArray<Element: BitwiseCopyable>: RandomAccessCollection, BitwiseCopyable, @unchecked Sendable {
    let start: UnsafePointer<Element>
    /// The number of elements.
    public let count: Int

    /// A view of `count` values at `start`, for memory of your own that outlives the view and
    /// never changes (a region of an arena or a mapped file); nothing is copied or checked.
    public init(start: UnsafePointer<Element>, count: Int) {
        self.start = start
        self.count = count
    }

    /// Always 0.
    public var startIndex: Int { 0 }
    /// ``count``.
    public var endIndex: Int { count }

    /// The element at `index`; an index outside `0..<count` traps.
    public subscript(index: Int) -> Element {
        precondition(index >= 0 && index < count, "index \(index) out of 0..<\(count)")
        return start[index]
    }

    /// The elements in place, for algorithms that want a buffer (binary search, memcmp).
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: start, count: count))
    }

    /// Calls `body` with the elements in place: always available, so the standard library's
    /// fast paths (copying into an array, `elementsEqual`) use it.
    public func withContiguousStorageIfAvailable<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R? {
        try body(UnsafeBufferPointer(start: start, count: count))
    }
}
