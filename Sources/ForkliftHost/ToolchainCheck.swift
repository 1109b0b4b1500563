import ForkliftWorker
import Glibc

/// Host and Swift plugins must come from the same Swift toolchain: the plugin binds to the
/// host's already-loaded Swift runtime, and Swift on Linux has no stable ABI across releases.
///
/// The compiler records its LLVM in each object's ELF `.comment` section, e.g.
/// `clang version 21.0.0 (https://github.com/swiftlang/llvm-project.git 11673e6...)`. Both
/// sides' records must agree. A plugin without such a record (written in C) is not checked.
enum ToolchainCheck {
    static func verify(pluginPath: String, who: String) throws(PluginFailure) {
        guard let plugin = swiftToolchain(ofFile: pluginPath) else { return }
        guard let host = hostToolchain, host != plugin else { return }
        throw PluginFailure("\(who): was built with a different Swift toolchain: found \(plugin) in its .comment section, expected this forklift's \(host); rebuild the plugin with the toolchain forklift was built with")
    }

    static let hostToolchain: String? = swiftToolchain(ofFile: "/proc/self/exe")

    /// The `swiftlang/llvm-project` line of the file's `.comment` section, if any.
    static func swiftToolchain(ofFile path: String) -> String? {
        guard let comment = ELFSection.contents(named: ".comment", inFile: path) else { return nil }
        let strings = comment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return strings.first { $0.contains("swiftlang/llvm-project") || $0.contains("apple/llvm-project") }
    }
}

/// Just enough ELF64 to read one section by name.
enum ELFSection {
    static func contents(named wanted: String, inFile path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let header = readBytes(fd, at: 0, count: 64), header.count == 64,
              header[0..<4] == [0x7F, 0x45, 0x4C, 0x46], header[4] == 2 /* ELFCLASS64 */, header[5] == 1 /* little-endian */
        else { return nil }
        let sectionTable = Int(le64(header, 0x28))
        let entrySize = Int(le16(header, 0x3A))
        let count = Int(le16(header, 0x3C))
        let namesIndex = Int(le16(header, 0x3E))
        guard entrySize >= 64, count > 0, count < 65_280, namesIndex < count,
              let table = readBytes(fd, at: sectionTable, count: entrySize * count)
        else { return nil }
        func section(_ index: Int) -> (name: Int, offset: Int, size: Int) {
            let base = index * entrySize
            return (Int(le32(table, base)), Int(le64(table, base + 0x18)), Int(le64(table, base + 0x20)))
        }
        let names = section(namesIndex)
        guard names.size < 1 << 24, let nameTable = readBytes(fd, at: names.offset, count: names.size) else { return nil }
        for index in 0..<count {
            let candidate = section(index)
            guard candidate.name < nameTable.count else { continue }
            let name = nameTable[candidate.name...].prefix { $0 != 0 }
            if String(decoding: name, as: UTF8.self) == wanted, candidate.size < 1 << 20 {
                return readBytes(fd, at: candidate.offset, count: candidate.size)
            }
        }
        return nil
    }

    private static func readBytes(_ fd: Int32, at offset: Int, count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return got == count ? buffer : nil
    }

    private static func le16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    private static func le32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }
    private static func le64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }
}
