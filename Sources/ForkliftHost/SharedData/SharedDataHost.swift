import CForkliftABI
import CForkliftSys
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import ForkliftWorker
import Glibc

/// Keyed shared data in a host, while its plugins preload: maps a set the running generation
/// handed on when a plugin asks for its key, or maps a fresh memfd for the plugin to fill,
/// then seals it and sends it to the master for the generations after this one.
///
/// Every handed-on set is checked before a byte of it is trusted (its seals, its size, its
/// header: identity, format, root length, address, checksum); anything doubtful is logged
/// and the data built afresh, as if nothing had been handed on.
final class SharedDataHost: SharedDataProvider {
    /// Sends a report (with the set's memfd) to the master.
    typealias Send = (HostReport, Int32?) -> Void

    private struct Fresh {
        let fd: Int32
        let placement: DataSetPlacement
        let identity: DataSetIdentity
        let format: UInt32
        let rootLength: Int
        let label: String
        var sealed = false
    }

    private var offered: [InheritedDataSet]
    /// Ids of offered sets a plugin now maps.
    private var used: Set<Int> = []
    private var fresh: [UInt64: Fresh] = [:]
    private var nextHandle: UInt64 = 1
    private var window: DataWindow
    private let send: Send
    private let log = ForkliftLogging.logger
    /// Shared mappings: their page tables are not copied at fork, and every generation reads
    /// the same page-cache pages (docs/shared-data.md has the measurements).
    static let mapsShared = true

    init(offered: [InheritedDataSet], send: @escaping Send) {
        self.offered = offered
        window = DataWindow(taken: offered.map(\.placement))
        self.send = send
    }

    // MARK: SharedDataProvider

    func open(for plugin: PluginInstance, key: String, format: UInt32, rootLength: Int, capacity: Int,
              label: String) throws(PluginFailure) -> forklift_shared_data {
        let who = "plugin \(plugin.settings.name): shared data \(label)"
        guard DataSetIdentity.isValidField(key) else {
            throw PluginFailure("\(who): key \"\(key)\" is not 1 to 200 bytes without whitespace or control characters")
        }
        guard rootLength <= DataSetHeader.rootCapacity else {
            throw PluginFailure("\(who): its root is \(rootLength) bytes, at most \(DataSetHeader.rootCapacity) fit in the header: keep offsets and views in it, not the data")
        }
        let identity = DataSetIdentity(instance: plugin.settings.name, plugin: plugin.reportedName, key: key)
        guard DataSetIdentity.isValidField(identity.instance), DataSetIdentity.isValidField(identity.plugin) else {
            throw PluginFailure("\(who): an instance or plugin name with whitespace cannot key shared data")
        }
        if let inherited = offered.first(where: { $0.identity == identity && !used.contains($0.id) }) {
            switch map(inherited, format: format, rootLength: rootLength) {
            case .success(let data):
                used.insert(inherited.id)
                log.info("\(who): \(identity.key) handed on by generation \(inherited.builtBy) (\(Formatting.mebibytes(inherited.placement.size))), not built again")
                return data
            case .failure(let mismatch):
                log.warning("\(who): the data of key \(key) handed on by generation \(inherited.builtBy) is not used, \(mismatch); building it afresh")
            }
        }
        return try create(identity, format: format, rootLength: rootLength, capacity: capacity, label: label, who: who)
    }

    func seal(for plugin: PluginInstance, _ data: inout forklift_shared_data, root: UnsafeRawBufferPointer, used: Int) throws(PluginFailure) {
        guard var set = fresh[data.handle], !set.sealed, set.identity.instance == plugin.settings.name else {
            throw PluginFailure("plugin \(plugin.settings.name): shared data: seal of data that is not open (sealed already, or not this plugin's)")
        }
        let who = "plugin \(plugin.settings.name): shared data \(set.label)"
        let capacity = set.placement.size - DataSetHeader.size
        guard used >= 0 && used <= capacity else { throw PluginFailure("\(who): \(used) bytes used of \(capacity)") }
        guard root.count == set.rootLength else { throw PluginFailure("\(who): a root of \(root.count) bytes, \(set.rootLength) were announced") }
        let size = (DataSetHeader.size + used + 4095) & ~4095
        let placement = DataSetPlacement(address: set.placement.address, size: size)
        let header = DataSetHeader(identity: set.identity, format: set.format, placement: placement, used: used, root: Array(root))
        let address = UnsafeMutableRawPointer(bitPattern: UInt(set.placement.address))!
        header.bytes.withUnsafeBytes { address.copyMemory(from: $0.baseAddress!, byteCount: DataSetHeader.size) }
        // The writable shared mapping must go before F_SEAL_WRITE; nothing else maps in
        // between (the host is single-threaded while it preloads).
        munmap(address, set.placement.size)
        window.shrink(set.placement, to: size)
        guard ftruncate(set.fd, off_t(size)) == 0, forklift_memfd_seal(set.fd) == 0 else {
            throw PluginFailure("\(who): cannot seal its memfd: \(String(cString: strerror(errno)))")
        }
        guard forklift_map_fixed(address, size, 0, Self.mapsShared ? 1 : 0, set.fd) != nil else {
            throw PluginFailure("\(who): cannot map its sealed memfd again at \(hex(placement.address)): \(String(cString: strerror(errno)))")
        }
        _ = madvise(address, size, MADV_HUGEPAGE)
        _ = forklift_fault_region_add(address, size, "plugin \(plugin.settings.name) (shared data \(set.label), key \(set.identity.key))")
        set.sealed = true
        fresh[data.handle] = set
        send(.dataBuilt(set.identity, placement), set.fd)
        closeDescriptor(set.fd) // the master has its copy; the mapping keeps the memory
        log.info("\(who): \(set.identity.key) built, \(Formatting.mebibytes(size)), sealed and kept for later generations")
        if size >= Self.hugePageAdviceSize, let setting = Self.shmemHugePages(), setting == "never" || setting == "deny" {
            log.notice("\(who): \(Formatting.mebibytes(size)) of keyed data in 4 KiB pages, as shared memory gets no huge pages here (/sys/kernel/mm/transparent_hugepage/shmem_enabled is \(setting)): each worker takes a page fault per 64 KiB it first reads, about 70 ms per GiB; with shmem_enabled = advise they are mapped 2 MiB at a time, as fast as an arena (docs/shared-data.md)")
        }
    }

    /// Data from this size on is worth a word about huge pages.
    static let hugePageAdviceSize = 64 << 20

    /// The bracketed choice of shmem_enabled ("never", "advise", ...), nil when unknown.
    static func shmemHugePages() -> String? {
        guard let file = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let open = text.firstIndex(of: "["), let close = text.firstIndex(of: "]"), open < close else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    /// Preload is over: what a plugin opened and never sealed (its builder threw, and it went
    /// on) is made read-only and offered to nobody; offered sets nobody used are given back.
    func finish() {
        for (handle, set) in fresh where !set.sealed {
            _ = mprotect(UnsafeMutableRawPointer(bitPattern: UInt(set.placement.address)), set.placement.size, PROT_READ)
            closeDescriptor(set.fd)
            fresh[handle]?.sealed = true
        }
        for set in offered {
            closeDescriptor(set.descriptor)
            if !used.contains(set.id) { send(.dataUnused(id: set.id), nil) }
        }
        offered = []
    }

    // MARK: Mapping

    func map(_ set: InheritedDataSet, format: UInt32, rootLength: Int) -> Result<forklift_shared_data, Mismatch> {
        var status = stat()
        guard fstat(set.descriptor, &status) == 0 else { return .failure(Mismatch("its memfd cannot be read: \(String(cString: strerror(errno)))")) }
        guard Int(status.st_size) == set.placement.size, set.placement.size > DataSetHeader.size, set.placement.size % 4096 == 0 else {
            return .failure(Mismatch("its memfd is \(status.st_size) bytes, the master said \(set.placement.size)"))
        }
        guard forklift_memfd_is_sealed(set.descriptor) == 1 else { return .failure(Mismatch("its memfd is not sealed")) }
        var page = [UInt8](repeating: 0, count: DataSetHeader.size)
        guard page.withUnsafeMutableBytes({ pread(set.descriptor, $0.baseAddress, DataSetHeader.size, 0) }) == DataSetHeader.size else {
            return .failure(Mismatch("its header cannot be read"))
        }
        let header: DataSetHeader
        switch DataSetHeader.parse(page) {
        case .success(let parsed): header = parsed
        case .failure(let mismatch): return .failure(mismatch)
        }
        guard header.identity == set.identity else { return .failure(Mismatch("its header names \(header.identity), not \(set.identity)")) }
        guard header.format == format else { return .failure(Mismatch("it is of format \(header.format), the plugin reads format \(format)")) }
        guard header.root.count == rootLength else {
            return .failure(Mismatch("its root is \(header.root.count) bytes, the plugin's root type has \(rootLength)"))
        }
        guard header.placement == set.placement, header.used <= set.placement.size - DataSetHeader.size else {
            return .failure(Mismatch("its header's size or address disagrees with the master's"))
        }
        guard let address = UnsafeMutableRawPointer(bitPattern: UInt(set.placement.address)),
              forklift_map_fixed(address, set.placement.size, 0, Self.mapsShared ? 1 : 0, set.descriptor) != nil else {
            return .failure(Mismatch("its address \(hex(set.placement.address)) is taken in this host: \(String(cString: strerror(errno)))"))
        }
        _ = madvise(address, set.placement.size, MADV_HUGEPAGE)
        _ = forklift_fault_region_add(address, set.placement.size, "plugin \(set.identity.instance) (shared data, key \(set.identity.key), handed on)")
        // The root is read from the mapping: it lives as long as the process.
        var data = forklift_shared_data()
        data.base = address + DataSetHeader.size
        data.capacity = header.used
        data.root = UnsafeRawPointer(address + DataSetHeader.rootOffset)
        data.root_length = rootLength
        data.inherited = 1
        return .success(data)
    }

    private func create(_ identity: DataSetIdentity, format: UInt32, rootLength: Int, capacity: Int, label: String,
                        who: String) throws(PluginFailure) -> forklift_shared_data {
        guard capacity > 0, capacity <= Int(DataWindow.end - DataWindow.start) - DataSetHeader.size,
              let placement = window.reserve(DataSetHeader.size + capacity) else {
            throw PluginFailure("\(who): no room for \(Formatting.mebibytes(capacity)) in the shared data window (\(Formatting.mebibytes(Int(DataWindow.end - DataWindow.start))) for all keyed data of a pool)")
        }
        let fd = forklift_memfd_create_sealable(String("forklift-data:\(identity.instance)/\(identity.key)".utf8.prefix(240))!)
        guard fd >= 0 else { throw PluginFailure("\(who): memfd_create: \(String(cString: strerror(errno)))") }
        let address = UnsafeMutableRawPointer(bitPattern: UInt(placement.address))!
        guard ftruncate(fd, off_t(placement.size)) == 0 else {
            closeDescriptor(fd)
            throw PluginFailure("\(who): cannot size its memfd to \(placement.size) bytes: \(String(cString: strerror(errno)))")
        }
        guard forklift_map_fixed(address, placement.size, 1, 1, fd) != nil else {
            let reason = String(cString: strerror(errno))
            closeDescriptor(fd)
            throw PluginFailure("\(who): cannot map its memfd at \(hex(placement.address)): \(reason)")
        }
        _ = madvise(address, placement.size, MADV_HUGEPAGE)
        let handle = nextHandle
        nextHandle += 1
        fresh[handle] = Fresh(fd: fd, placement: placement, identity: identity, format: format, rootLength: rootLength, label: label)
        var data = forklift_shared_data()
        data.base = address + DataSetHeader.size
        data.capacity = placement.size - DataSetHeader.size
        data.inherited = 0
        data.handle = handle
        return data
    }

    private func hex(_ address: UInt64) -> String { "0x" + String(address, radix: 16) }
}
