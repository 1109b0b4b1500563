import ForkliftIPC

/// Where keyed data sets are mapped: a fixed window of the address space, the same in every
/// host of every generation, so that a set inherited by a new generation sits at the address
/// its plugin's pointers name. Hosts are forked from the master, which maps nothing there, and
/// the kernel places other mappings top-down from far above, so the window is free unless a
/// process maps terabytes; every mapping in it is MAP_FIXED_NOREPLACE, so a collision is an
/// error (and the data is built into an ordinary arena), never an overwrite.
struct DataWindow {
    static let start: UInt64 = 0x6000_0000_0000 // 96 TiB
    static let end: UInt64 = 0x6800_0000_0000 // 104 TiB: 8 TiB of room
    /// Sets start on 2 MiB boundaries, where huge pages could map them.
    static let alignment: UInt64 = 2 << 20

    /// What is mapped, or may be mapped by a later generation beside this one's: every set
    /// the host was offered (used or not: a later generation may be offered it too) and each it built.
    private(set) var taken: [DataSetPlacement]

    init(taken: [DataSetPlacement]) {
        self.taken = taken
    }

    /// The lowest free place for `size` bytes, reserved at once; nil when the window is full.
    mutating func reserve(_ size: Int) -> DataSetPlacement? {
        let length = (UInt64(size) + Self.alignment - 1) / Self.alignment * Self.alignment
        var candidate = Self.start
        for placement in taken.sorted(by: { $0.address < $1.address }) {
            if candidate + length <= placement.address { break }
            candidate = max(candidate, (placement.end + Self.alignment - 1) / Self.alignment * Self.alignment)
        }
        guard candidate + length <= Self.end else { return nil }
        let placement = DataSetPlacement(address: candidate, size: Int(length))
        taken.append(placement)
        return placement
    }

    /// `placement` needs less than it reserved now (the builder filled less than its capacity).
    mutating func shrink(_ placement: DataSetPlacement, to size: Int) {
        guard let index = taken.firstIndex(of: placement) else { return }
        taken[index] = DataSetPlacement(address: placement.address, size: size)
    }
}
