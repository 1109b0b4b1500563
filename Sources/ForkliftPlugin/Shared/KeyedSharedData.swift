import CForkliftABI

#if canImport(Glibc)
import Glibc
#endif

extension PluginContext {
    /// Preloaded data built under a key you choose, which a reload that changes only your code
    /// inherits instead of building it again.
    ///
    /// `build` fills the arena it is given and returns the *root* of what it built: a value
    /// of views into that arena (a ``SharedStringDictionary``, a ``SharedArray``, a struct of
    /// them). When the running generation of the same pool and plugin holds data under the
    /// same `key`, `format` and root type size, the new generation maps that very memory,
    /// read-only and at the same address, and gets the root back: `build` does not run, no
    /// second copy exists, and the reload takes milliseconds instead of the whole preload.
    /// Otherwise `build` runs, and what it built is sealed for good and offered to the next
    /// generation.
    ///
    /// ```swift
    /// // A new key whenever the data or its layout changes: here, the file and the format.
    /// let words = try context.sharedData(key: "words-\(fileDigest)", format: 2, capacity: 2 << 30) { arena in
    ///     var builder = SharedStringDictionary.Builder(arena: arena, expectedCount: 100_000)
    ///     try builder.add(key: "apple", value: "a fruit")
    ///     return try builder.finish()
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - key: 1 to 200 bytes, no whitespace or control characters. Change it whenever the
    ///     data would come out different: a version of the data, a hash of its source files.
    ///   - format: the version of your data's layout: raise it when the root's type or what
    ///     the bytes mean changes, so new code never misreads old bytes.
    ///   - capacity: the most bytes `build` may fill; address space, not memory (only what is
    ///     filled is kept).
    ///   - label: names the data in logs, `forklift status` and the crash line of a worker
    ///     that writes to it.
    ///   - build: fills the arena and returns the root. The root must hold only values and
    ///     pointers *into this arena*: anything pointing elsewhere (a class, a `String`, an
    ///     `Array`, another arena) dangles in the generation that inherits it.
    ///
    /// The memory is a sealed memfd: no process of any generation can write it, and a worker
    /// that tries dies alone, the log naming the plugin and `label`. It lives while any
    /// generation maps it and is freed when the last one has drained. First reads of it in a
    /// worker cost page faults that today's anonymous arenas partly avoid (docs/shared-data.md
    /// has the figures). Call it during preload only (the initialiser or `warmUp()`), from
    /// that one thread. Under a host without keyed data (an older forklift, or
    /// ForkliftTesting's in-process host) it builds into a ``SharedArena`` every time.
    public func sharedData<Root: BitwiseCopyable>(key: String, format: Int = 1, capacity: Int, label: String = "data",
                                                  build: (SharedArena) throws -> Root) throws -> Root {
        precondition(capacity > 0, "keyed data needs a capacity")
        guard format >= 0 && format <= Int(UInt32.max) else { throw PluginError("shared data \(label): format \(format) is not a 32-bit version number") }
        let api = log.api
        guard Int(api.pointee.struct_size) >= KeyedDataHooks.end, let open = api.pointee.shared_data_open,
              let seal = api.pointee.shared_data_seal else {
            return try build(SharedArena(capacity: capacity, label: label))
        }
        var data = forklift_shared_data()
        var error = forklift_error()
        let opened = open(api, key, UInt32(format), MemoryLayout<Root>.size, capacity, label, &data, &error)
        guard opened == Int32(FORKLIFT_OK) else { throw PluginError(KeyedDataHooks.message(&error)) }
        if data.inherited != 0 {
            guard let root = data.root, data.root_length == MemoryLayout<Root>.size else {
                throw PluginError("shared data \(label): the host handed on data without its \(MemoryLayout<Root>.size)-byte root")
            }
            return root.loadUnaligned(as: Root.self)
        }
        guard let base = data.base else { throw PluginError("shared data \(label): the host mapped no memory") }
        let arena = SharedArena(hostMemory: base, capacity: data.capacity, label: label)
        var root = try build(arena)
        arena.seal()
        let sealed = withUnsafeBytes(of: &root) { bytes in
            seal(api, &data, bytes.baseAddress, bytes.count, arena.used, &error)
        }
        guard sealed == Int32(FORKLIFT_OK) else { throw PluginError(KeyedDataHooks.message(&error)) }
        return root
    }
}

enum KeyedDataHooks {
    /// Where `shared_data_seal` ends in the host's table: older hosts of ABI 1 have a shorter one.
    static let end = MemoryLayout<forklift_host_api>.offset(of: \.shared_data_seal)! + MemoryLayout<UnsafeRawPointer>.size

    static func message(_ error: inout forklift_error) -> String {
        withUnsafeBytes(of: &error.message) { raw in
            let text = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            return text.isEmpty ? "the host refused keyed shared data without saying why" : text
        }
    }
}
