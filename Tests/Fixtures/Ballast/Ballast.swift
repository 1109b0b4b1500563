import ForkliftPlugin

#if canImport(Glibc)
import Glibc
#endif

/// For the reload benchmark: preloads `preload_mb` MiB of data (0 by default: then it is
/// Hello with the worker's pid in the answer), so that reload timings can be measured with
/// and without a heavy preload. Answers "ballast <MiB> pid <worker pid> host <host pid>".
/// With `keyed = true` the data is keyed shared data (key "ballast-<MiB>"), which a reload
/// inherits instead of building again.
final class Ballast: ForkliftHandler {
    static let name = "ballast"
    static let version = "1.0.0"

    let megabytes: Int
    let data: UnsafeRawBufferPointer

    init(context: PluginContext) throws {
        megabytes = try context.settings.int("preload_mb") ?? 0
        if try context.settings.bool("keyed") == true {
            let bytes = max(1, megabytes << 20)
            data = try context.sharedData(key: "ballast-\(megabytes)", capacity: bytes, label: "ballast") { arena in
                let memory = try arena.allocate(byteCount: bytes, alignment: 4096)
                Self.touch(memory)
                return UnsafeRawBufferPointer(memory)
            }
            return
        }
        // Anonymous memory advised to use huge pages: forking a process with 512 MiB in
        // 4 KiB pages copies 131,072 page-table entries per worker; in 2 MiB pages, 256.
        let bytes = max(1, megabytes << 20)
        let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else { throw PluginError("cannot map \(megabytes) MiB") }
        _ = madvise(memory, bytes, MADV_HUGEPAGE)
        let filled = UnsafeMutableRawBufferPointer(start: memory, count: bytes)
        Self.touch(filled)
        data = UnsafeRawBufferPointer(filled)
    }

    /// Writes every page, as real preloaded data would be.
    static func touch(_ memory: UnsafeMutableRawBufferPointer) {
        var value: UInt8 = 1
        for offset in stride(from: 0, to: memory.count, by: 4096) {
            memory[offset] = value
            value &+= 7
        }
    }

    func handle(_ request: Request, _ response: Response) throws {
        try response.write("ballast \(megabytes) pid \(getpid()) host \(getppid())\n")
    }
}

@_cdecl("forklift_plugin_entry") public func forkliftPluginEntry() -> UnsafeRawPointer { export(Ballast.self) }
