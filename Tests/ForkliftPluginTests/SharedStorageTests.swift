import Foundation
@testable import ForkliftPlugin
import Testing

@Suite struct SharedStorageTests {
    @Test func arraysCopyTrivialValuesIntoTheArena() throws {
        let arena = try SharedArena(capacity: 1 << 20, label: "test")
        let numbers = try arena.append(contentsOf: [3, 1, 4, 1, 5, 9, 2, 6] as [Int32])
        #expect(Array(numbers) == [3, 1, 4, 1, 5, 9, 2, 6])
        #expect(numbers.count == 8)
        struct Point: BitwiseCopyable, Equatable { var x: Double; var y: Double }
        let points = try arena.append(contentsOf: [Point(x: 1, y: 2), Point(x: 3, y: 4)])
        #expect(points[1] == Point(x: 3, y: 4))
        #expect(arena.used >= 8 * 4 + 2 * 16)
    }

    @Test func aFullArenaSaysSo() throws {
        let arena = try SharedArena(capacity: 4096, label: "small")
        _ = try arena.allocate(byteCount: 4000)
        #expect(throws: PluginError.self) { _ = try arena.allocate(byteCount: 200) }
    }

    @Test func theDictionaryFindsEveryKeyAndNothingElse() throws {
        let arena = try SharedArena(capacity: 16 << 20, label: "dictionary")
        var builder = SharedStringDictionary.Builder(arena: arena)
        for i in 0..<10_000 { try builder.add(key: "key-\(i)", value: "value \(i * i)") }
        try builder.add(key: "", value: "the empty key")
        try builder.add(key: "ünïcødé ✓", value: "")
        let dictionary = try builder.finish()
        #expect(dictionary.count == 10_002)
        for i in stride(from: 0, to: 10_000, by: 37) { #expect(dictionary["key-\(i)"] == "value \(i * i)") }
        #expect(dictionary[""] == "the empty key")
        #expect(dictionary["ünïcødé ✓"] == "")
        #expect(dictionary["key-10000"] == nil)
        #expect(dictionary["key-1 "] == nil)
        #expect(dictionary.withValue(for: "key-3") { $0.count } == "value 9".utf8.count)
    }

    @Test func theStringTableKeepsOrderAndBytes() throws {
        let arena = try SharedArena(capacity: 1 << 20, label: "strings")
        var builder = SharedStringTable.Builder(arena: arena)
        let words = ["alpha", "", "βeta", "gamma gamma"]
        for word in words { _ = try builder.append(word) }
        let table = try builder.finish()
        #expect(Array(table) == words)
        #expect(table.withBytes(2) { $0.count } == "βeta".utf8.count)
    }

    @Test func sealingMakesTheArenaReadOnly() throws {
        let arena = try SharedArena(capacity: 8192, label: "sealed")
        _ = try arena.append(contentsOf: [UInt8](repeating: 1, count: 100))
        arena.seal()
        #expect(arena.isSealed)
        // /proc/self/maps shows the arena's pages without write permission now.
        let address = UInt(bitPattern: arena.base)
        let maps = String(decoding: FileHandle(forReadingAtPath: "/proc/self/maps")!.readDataToEndOfFile(), as: UTF8.self)
        let line = try #require(maps.split(separator: "\n").first { line in
            let range = line.split(separator: " ")[0].split(separator: "-").compactMap { UInt($0, radix: 16) }
            return range.count == 2 && range[0] <= address && address < range[1]
        }, "0x\(String(address, radix: 16)) not in \(maps.count) bytes of maps")
        #expect(line.split(separator: " ")[1].hasPrefix("r-"), "\(line)")
    }

    @Test func aMappedFileIsReadInPlace() throws {
        let path = NSTemporaryDirectory() + "forklift-mapped-\(getpid()).bin"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var values: [UInt32] = [10, 20, 30, 40]
        try Data(bytes: &values, count: 16).write(to: URL(fileURLWithPath: path))
        let file = try MappedFile(path: path)
        #expect(Array(file.array(of: UInt32.self)) == [10, 20, 30, 40])
        #expect(throws: PluginError.self) { _ = try MappedFile(path: path + ".missing") }
    }
}
