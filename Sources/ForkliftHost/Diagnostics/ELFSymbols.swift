import Glibc

/// The function symbols of an ELF64 file (its `.symtab`, or `.dynsym` when stripped), sorted
/// by address, read with pread: enough to name the frames of a backtrace. Swift's internal
/// functions are only in `.symtab` (they are not exported), so `dladdr` cannot name them.
struct ELFSymbols {
    struct Symbol {
        let start: UInt64
        let size: UInt64
        let name: String
    }

    let symbols: [Symbol]

    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        func read(_ offset: UInt64, _ count: Int) -> [UInt8]? {
            guard count >= 0, count < 1 << 30 else { return nil }
            var bytes = [UInt8](repeating: 0, count: count)
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return got == count ? bytes : nil
        }
        guard let header = read(0, 64), header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46, header[4] == 2 else { return nil }
        let sectionsAt = header.load(UInt64.self, at: 0x28)
        let entrySize = Int(header.load(UInt16.self, at: 0x3A))
        let count = Int(header.load(UInt16.self, at: 0x3C))
        guard entrySize >= 64, count > 0, count < 65536, let table = read(sectionsAt, entrySize * count) else { return nil }
        struct Section { let type: UInt32; let offset: UInt64; let size: UInt64; let link: Int; let entrySize: UInt64 }
        let sections = (0..<count).map { index -> Section in
            let base = index * entrySize
            return Section(type: table.load(UInt32.self, at: base + 4), offset: table.load(UInt64.self, at: base + 24),
                           size: table.load(UInt64.self, at: base + 32), link: Int(table.load(UInt32.self, at: base + 40)),
                           entrySize: table.load(UInt64.self, at: base + 56))
        }
        // SHT_SYMTAB, else SHT_DYNSYM.
        guard let symbolTable = sections.first(where: { $0.type == 2 }) ?? sections.first(where: { $0.type == 11 }),
              symbolTable.entrySize == 24, symbolTable.link < sections.count,
              let entries = read(symbolTable.offset, Int(symbolTable.size)),
              let strings = read(sections[symbolTable.link].offset, Int(sections[symbolTable.link].size)) else { return nil }
        var symbols: [Symbol] = []
        for index in 0..<(entries.count / 24) {
            let base = index * 24
            guard entries[base + 4] & 0x0F == 2 else { continue } // STT_FUNC
            let value = entries.load(UInt64.self, at: base + 8)
            guard value != 0 else { continue }
            let nameAt = Int(entries.load(UInt32.self, at: base))
            guard nameAt < strings.count else { continue }
            let end = strings[nameAt...].firstIndex(of: 0) ?? strings.count
            symbols.append(Symbol(start: value, size: entries.load(UInt64.self, at: base + 16),
                                  name: String(decoding: strings[nameAt..<end], as: UTF8.self)))
        }
        self.symbols = symbols.sorted { $0.start < $1.start }
    }

    /// The function holding `address` (an address in the file's own terms), and the offset in it.
    func lookup(_ address: UInt64) -> (name: String, offset: UInt64)? {
        var low = 0, high = symbols.count
        while low < high {
            let middle = (low + high) / 2
            if symbols[middle].start <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let symbol = symbols[low - 1]
        let offset = address - symbol.start
        guard symbol.size == 0 ? offset < 1 << 16 : offset < symbol.size else { return nil }
        return (symbol.name, offset)
    }
}

extension Array where Element == UInt8 {
    func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        guard offset + MemoryLayout<T>.size <= count else { return 0 }
        return withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
