import CForkliftABI
import CForkliftSys
import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftWorker
import Glibc
import Testing

/// The host's side of keyed shared data, in this process: a set built and sealed, then
/// handed on to a second `SharedDataHost` as a new generation's host would get it; and every
/// kind of doubtful set it must refuse, building afresh instead.
@Suite(.serialized) struct SharedDataHostTests {
    nonisolated(unsafe) static let descriptor: UnsafeMutablePointer<forklift_plugin> = {
        let plugin = UnsafeMutablePointer<forklift_plugin>.allocate(capacity: 1)
        plugin.initialize(to: forklift_plugin(abi_version: FORKLIFT_ABI_VERSION, struct_size: UInt32(MemoryLayout<forklift_plugin>.size),
                                              name: UnsafePointer(strdup("numbers")), version: UnsafePointer(strdup("1.0")),
                                              preload: nil, worker_init: nil, handle: nil, worker_exit: nil))
        return plugin
    }()
    let plugin = PluginInstance(settings: PluginSettings(name: "counter", path: "/nowhere.so", route: "/c"), poolName: "www",
                                descriptor: SharedDataHostTests.descriptor)
    let identity = DataSetIdentity(instance: "counter", plugin: "numbers", key: "v1")

    /// What a host sent the master.
    final class Sent {
        var reports: [HostReport] = []
        var descriptors: [Int32] = []
        func send(_ report: HostReport, _ descriptor: Int32?) {
            reports.append(report)
            if let descriptor { descriptors.append(dup(descriptor)) }
        }
    }

    /// Builds a sealed set of `count` numbers with an 8-byte root, as a plugin would, and
    /// unmaps it again (so that this same process can map it as the next generation).
    func buildSet(count: Int = 1000) throws -> (InheritedDataSet, root: UInt64) {
        let sent = Sent()
        let host = SharedDataHost(offered: [], send: sent.send)
        var data = try host.open(for: plugin, key: "v1", format: 3, rootLength: 8, capacity: count * 8, label: "numbers")
        #expect(data.inherited == 0 && data.capacity >= count * 8)
        let numbers = data.base!.bindMemory(to: UInt64.self, capacity: count)
        for index in 0..<count { numbers[index] = UInt64(index * 3) }
        var root = UInt64(UInt(bitPattern: data.base))
        try withUnsafeBytes(of: &root) { try host.seal(for: plugin, &data, root: $0, used: count * 8) }
        host.finish()
        guard case .dataBuilt(let builtIdentity, let placement) = try #require(sent.reports.first) else {
            Issue.record("no dataBuilt report: \(sent.reports)")
            throw Mismatch("no set")
        }
        #expect(builtIdentity == identity)
        #expect(forklift_memfd_is_sealed(sent.descriptors[0]) == 1, "sealed for good before it is offered")
        #expect(mprotect(UnsafeMutableRawPointer(bitPattern: UInt(placement.address)), placement.size, PROT_READ | PROT_WRITE) != 0,
                "the read-only shared mapping of a write-sealed memfd cannot be made writable again")
        munmap(UnsafeMutableRawPointer(bitPattern: UInt(placement.address)), placement.size)
        return (InheritedDataSet(id: 7, identity: identity, placement: placement, builtBy: 1, descriptor: sent.descriptors[0]), root)
    }

    @Test func aSealedSetIsHandedOnWithItsRootAndBytesAtTheSameAddress() throws {
        let (set, root) = try buildSet()
        let sent = Sent()
        let next = SharedDataHost(offered: [set], send: sent.send)
        let data = try next.open(for: plugin, key: "v1", format: 3, rootLength: 8, capacity: 8000, label: "numbers")
        #expect(data.inherited == 1)
        #expect(data.root!.loadUnaligned(as: UInt64.self) == root && UInt(bitPattern: data.base) == UInt(root))
        let numbers = data.base!.bindMemory(to: UInt64.self, capacity: 1000)
        #expect((0..<1000).allSatisfy { numbers[$0] == UInt64($0 * 3) })
        next.finish()
        #expect(sent.reports.isEmpty, "a used set is not reported unused")
        munmap(UnsafeMutableRawPointer(bitPattern: UInt(set.placement.address)), set.placement.size)
        close(set.descriptor)
    }

    @Test func anotherKeyFormatOrRootSizeBuildsAfreshAndGivesTheSetBack() throws {
        let (set, _) = try buildSet()
        defer { close(set.descriptor) }
        let host = SharedDataHost(offered: [set], send: { _, _ in })
        #expect(host.map(set, format: 4, rootLength: 8).failure == Mismatch("it is of format 3, the plugin reads format 4"))
        #expect(host.map(set, format: 3, rootLength: 16).failure == Mismatch("its root is 8 bytes, the plugin's root type has 16"))

        let sent = Sent()
        let other = SharedDataHost(offered: [set], send: sent.send)
        let data = try other.open(for: plugin, key: "v2", format: 3, rootLength: 8, capacity: 8000, label: "numbers")
        #expect(data.inherited == 0, "another key: built afresh")
        #expect(UInt64(UInt(bitPattern: data.base)) >= set.placement.end, "placed beside the offered set, which a later generation may map too")
        other.finish()
        #expect(sent.reports == [.dataUnused(id: 7)])
    }

    /// A copy of the set's bytes in a new memfd, changed by `forge`, sealed unless `seal` is false.
    func forged(_ set: InheritedDataSet, seal: Bool = true, size: Int? = nil, _ forge: (inout [UInt8]) -> Void = { _ in }) throws -> InheritedDataSet {
        var bytes = [UInt8](repeating: 0, count: set.placement.size)
        #expect(bytes.withUnsafeMutableBytes { pread(set.descriptor, $0.baseAddress, set.placement.size, 0) } == set.placement.size)
        forge(&bytes)
        let fd = forklift_memfd_create_sealable("forged")
        let length = size ?? bytes.count
        #expect(bytes.withUnsafeBytes { write(fd, $0.baseAddress, min(length, bytes.count)) } == min(length, bytes.count))
        #expect(ftruncate(fd, off_t(length)) == 0)
        if seal { #expect(forklift_memfd_seal(fd) == 0) }
        return InheritedDataSet(id: set.id, identity: set.identity, placement: set.placement, builtBy: 1, descriptor: fd)
    }

    @Test func aForgedTruncatedOrUnsealedSetIsRefusedWithTheReason() throws {
        let (set, _) = try buildSet()
        defer { close(set.descriptor) }
        let host = SharedDataHost(offered: [], send: { _, _ in })
        let cases: [(InheritedDataSet, String)] = [
            (try forged(set, seal: false), "its memfd is not sealed"),
            (try forged(set, size: set.placement.size - 4096), "its memfd is \(set.placement.size - 4096) bytes, the master said \(set.placement.size)"),
            (try forged(set) { $0[0] ^= 1 }, "it has no forklift data header"),
            (try forged(set) { $0[8] = 9 }, "its header is of layout 9, this forklift reads 1"),
            (try forged(set) { $0[100] ^= 0xFF }, "its header's checksum is wrong"),
            (try forged(set) { bytes in
                // Another plugin's set with a checksum that matches: the identity is what is refused.
                let text = Array("counter\tother\tv1".utf8)
                bytes.replaceSubrange(48..<48 + text.count, with: text)
                bytes.replaceSubrange(44..<48, with: withUnsafeBytes(of: UInt32(text.count).littleEndian, Array.init))
                let sum = DataSetHeader.checksum(Array(bytes.prefix(4096)))
                bytes.replaceSubrange(4088..<4096, with: withUnsafeBytes(of: sum.littleEndian, Array.init))
            }, "its header names plugin counter (other) key v1, not plugin counter (numbers) key v1"),
        ]
        for (forgery, reason) in cases {
            #expect(host.map(forgery, format: 3, rootLength: 8).failure == Mismatch(reason))
            close(forgery.descriptor)
        }
    }

    @Test func anAddressTakenInTheHostIsRefusedNotOverwritten() throws {
        let (set, _) = try buildSet()
        defer { close(set.descriptor) }
        let blocker = mmap(UnsafeMutableRawPointer(bitPattern: UInt(set.placement.address)), 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
        defer { munmap(blocker, 4096) }
        let host = SharedDataHost(offered: [set], send: { _, _ in })
        let reason = host.map(set, format: 3, rootLength: 8).failure?.description ?? ""
        #expect(reason.hasPrefix("its address 0x\(String(set.placement.address, radix: 16)) is taken in this host"), "\(reason)")
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}
