import CForkliftSys
import ForkliftSystem
import Glibc

/// Shared memory the master maps before it forks anything, so that the master, every host
/// and every worker see the same bytes. One slot per host process (a pool's generation):
///
/// - `retired`: set by the master when the generation stops being live;
/// - `live`: set by the master when the generation goes live (a gated worker that sees its gate
///   open without it knows its host died, and leaves instead of serving uncommitted code);
/// - `waiting`: how many of its workers are between "about to wait for a connection" and
///   "accept() returned".
///
/// They make the switch to a new generation strict. The master sets `retired`, TERMs the
/// old generation, and opens the new one's gate only once `waiting` is 0: from then on no
/// old worker can be woken for a connection, so no client ever gets an answer from the old
/// code after one from the new. (A worker checks `retired` after raising `waiting`; with
/// sequentially consistent atomics either the master sees it waiting or it sees `retired`.)
public struct Scoreboard: @unchecked Sendable {
    public static let capacity = 4096
    static let stride = 4
    let base: UnsafeMutablePointer<Int32>

    public init() throws {
        let bytes = Self.capacity * Self.stride * MemoryLayout<Int32>.size
        let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        guard let memory, memory != MAP_FAILED else { throw SystemError("mmap(scoreboard)") }
        base = memory.bindMemory(to: Int32.self, capacity: Self.capacity * Self.stride)
    }

    /// One host's slot.
    public func slot(_ index: Int) -> HostSlot {
        precondition(index >= 0 && index < Self.capacity)
        return HostSlot(pointer: base + index * Self.stride)
    }
}

/// A host's two counters in the scoreboard; valid in the master, the host and its workers.
public struct HostSlot: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int32>

    public var isRetired: Bool { forklift_atomic_load(pointer) != 0 }
    public var waitingWorkers: Int32 { forklift_atomic_load(pointer + 1) }
    public var isLive: Bool { forklift_atomic_load(pointer + 2) != 0 }

    /// Master: a fresh slot for a new host.
    public func reset() {
        forklift_atomic_store(pointer, 0)
        forklift_atomic_store(pointer + 1, 0)
        forklift_atomic_store(pointer + 2, 0)
    }

    /// Master: this generation is no longer live.
    public func retire() { forklift_atomic_store(pointer, 1) }

    /// Master: this generation is committed; its workers may serve.
    public func markLive() { forklift_atomic_store(pointer + 2, 1) }

    /// Worker: about to wait for a connection. Returns false (and backs out) if retired.
    public func enterWaiting() -> Bool {
        forklift_atomic_add(pointer + 1, 1)
        if isRetired {
            leaveWaiting()
            return false
        }
        return true
    }

    /// Worker: done waiting (accept() returned, or it gave up).
    public func leaveWaiting() { forklift_atomic_add(pointer + 1, -1) }
}

/// Which scoreboard slots are in use; lives in the master only.
public struct SlotAllocator {
    private var free = Array((0..<Scoreboard.capacity).reversed())

    public init() {}

    public mutating func allocate() -> Int? { free.popLast() }

    public mutating func release(_ index: Int) { free.insert(index, at: 0) }
}
