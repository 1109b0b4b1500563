import CForkliftABI

/// The arenas and mapped files this plugin created, sealed and announced to the host when the
/// preload hook returns (so a write fault in a worker can be named). One registry per plugin:
/// each plugin links its own copy of the SDK.
enum SharedRegions {
    nonisolated(unsafe) static var arenas: [SharedArena] = []
    nonisolated(unsafe) static var files: [MappedFile] = []

    static func register(_ arena: SharedArena) { arenas.append(arena) }
    static func register(_ file: MappedFile) { files.append(file) }

    /// Seals every arena and tells the host where the read-only regions are.
    static func sealAll(api: UnsafePointer<forklift_host_api>) {
        for arena in arenas {
            arena.seal()
            announce(api, arena.base, arena.capacity, "shared arena \(arena.label)")
        }
        for file in files {
            announce(api, UnsafeMutableRawPointer(mutating: file.bytes.baseAddress!), file.bytes.count, "mapped file \(file.path)")
        }
        arenas.removeAll()
        files.removeAll()
    }

    private static func announce(_ api: UnsafePointer<forklift_host_api>, _ start: UnsafeMutableRawPointer, _ length: Int, _ label: String) {
        // An older host without the hook still gets sealed memory, just less precise crash logs.
        guard Int(api.pointee.struct_size) >= MemoryLayout<forklift_host_api>.size,
              let hook = api.pointee.register_read_only_region else { return }
        _ = hook(api, start, length, label)
    }
}
