import ForkliftIPC
import Glibc

/// The keyed data sets the master keeps for the pools' later generations, and how long.
///
/// A set is a sealed memfd a plugin built under its key; the master holds one descriptor of
/// it (the shell's, by id) and never maps it. Every new host of a pool is offered every set of
/// that pool; it keeps those its plugins ask for and says which it did not use. A set stays
/// while any host that uses it lives (its workers map it; a host outlives its workers) and is
/// released when the last one is gone: the descriptor closed, the memory freed with the last
/// mapping. When a host builds a set of an identity already held, the new one is what later
/// hosts are offered; the old one stays for its users.
///
/// Pure: it takes what happened and returns the ids whose descriptors the shell closes.
struct SharedDataSets {
    struct Entry: Equatable {
        let id: Int
        let pool: String
        let identity: DataSetIdentity
        let placement: DataSetPlacement
        let builtBy: Int
        /// Hosts that may map it: its builder, and those offered it that did not say otherwise.
        var users: Set<pid_t>
        /// Offered to new hosts of the pool: the newest set of its identity.
        var offered: Bool
    }

    /// Stands for the old master's generations in the new master of an upgrade: the sets it
    /// handed over are kept until the upgrade is decided (`hostExited(previousMaster)`).
    static let previousMaster: pid_t = 0

    private(set) var entries: [Int: Entry] = [:]
    private var nextID = 1

    /// What a new host of `pool` is offered: its descriptors are inherited by the fork.
    func offers(for pool: String) -> [Entry] {
        entries.values.filter { $0.pool == pool && $0.offered }.sorted { $0.id < $1.id }
    }

    /// The host `pid` was forked with `ids`: they stay until it says it did not use them or exits.
    mutating func handedOn(_ ids: [Int], to pid: pid_t) {
        for id in ids { entries[id]?.users.insert(pid) }
    }

    /// Host `pid` (of `pool`, generation `generation`) built a set. Returns its id.
    mutating func built(by pid: pid_t, pool: String, generation: Int, identity: DataSetIdentity, placement: DataSetPlacement) -> Int {
        let id = nextID
        nextID += 1
        for (other, entry) in entries where entry.pool == pool && entry.identity == identity { entries[other]?.offered = false }
        entries[id] = Entry(id: id, pool: pool, identity: identity, placement: placement, builtBy: generation, users: [pid], offered: true)
        return id
    }

    /// Host `pid` did not use set `id`. Returns the ids to release (at most that one).
    mutating func unused(_ id: Int, by pid: pid_t) -> [Int] {
        entries[id]?.users.remove(pid)
        return releaseUnused()
    }

    /// Host `pid` is gone. Returns the ids to release.
    mutating func hostExited(_ pid: pid_t) -> [Int] {
        for id in entries.keys { entries[id]?.users.remove(pid) }
        return releaseUnused()
    }

    private mutating func releaseUnused() -> [Int] {
        let released = entries.values.filter(\.users.isEmpty).map(\.id).sorted()
        for id in released { entries[id] = nil }
        return released
    }
}
