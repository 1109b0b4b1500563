import CForkliftABI
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The arenas and mapped files this plugin created, sealed and announced to the host when the
/// preload hook returns (so a write fault in a worker can be named). One registry per plugin:
/// each plugin links its own copy of the SDK.
enum SharedRegions {
    /// What a thread registered, so that a preload seals only its own: in a host there is one
    /// thread, but a test process may preload in-process (ForkliftTesting) while another test
    /// still fills an arena on another thread.
    private struct Entries {
        var arenas: [(SharedArena, pthread_t)] = []
        var files: [(MappedFile, pthread_t)] = []
    }

    nonisolated(unsafe) private static var entries = Entries()
    /// Guards `entries` (the arenas are not Sendable, so they cannot live in the Mutex).
    private static let lock = Mutex(())

    static func register(_ arena: SharedArena) { lock.withLock { _ in entries.arenas.append((arena, pthread_self())) } }
    static func register(_ file: MappedFile) { lock.withLock { _ in entries.files.append((file, pthread_self())) } }

    /// Seals every arena this thread created and tells the host where the read-only regions are.
    static func sealAll(api: UnsafePointer<forklift_host_api>) {
        let me = pthread_self()
        let (arenas, files) = lock.withLock { _ in
            let arenas = entries.arenas.filter { pthread_equal($0.1, me) != 0 }.map(\.0)
            let files = entries.files.filter { pthread_equal($0.1, me) != 0 }.map(\.0)
            entries.arenas.removeAll { pthread_equal($0.1, me) != 0 }
            entries.files.removeAll { pthread_equal($0.1, me) != 0 }
            return (arenas, files)
        }
        for arena in arenas {
            arena.seal()
            announce(api, arena.base, arena.capacity, "shared arena \(arena.label)")
        }
        for file in files {
            announce(api, UnsafeMutableRawPointer(mutating: file.bytes.baseAddress!), file.bytes.count, "mapped file \(file.path)")
        }
    }

    /// Where `register_read_only_region` ends in the host's table: hosts of ABI 1 before it
    /// was appended have a shorter one.
    private static let hookEnd = MemoryLayout<forklift_host_api>.offset(of: \.register_read_only_region)! + MemoryLayout<UnsafeRawPointer>.size

    private static func announce(_ api: UnsafePointer<forklift_host_api>, _ start: UnsafeMutableRawPointer, _ length: Int, _ label: String) {
        // An older host without the hook still gets sealed memory, just less precise crash logs.
        guard Int(api.pointee.struct_size) >= hookEnd, let hook = api.pointee.register_read_only_region else { return }
        _ = hook(api, start, length, label)
    }
}
