import ForkliftPlugin

#if canImport(Glibc)
import Glibc
#endif

/// Keyed shared data for the "versioned" test plugins (both builds link this): with the
/// setting `data_key`, `data_kb` KiB of numbers built under that key, which a reload to the
/// other build with the same key inherits. The builder logs "keyed data built for key K", so
/// a test sees whether it ran; with `data_fail = true` it throws after that line.
public struct KeyedNumbers: BitwiseCopyable {
    public let values: SharedArray<UInt64>

    public static func load(_ context: PluginContext) throws -> KeyedNumbers? {
        guard let key = context.settings["data_key"] else { return nil }
        let count = max(1, (try context.settings.int("data_kb") ?? 64) * 1024 / 8)
        let format = try context.settings.int("data_format") ?? 1
        return try context.sharedData(key: key, format: format, capacity: count * 8, label: "numbers") { arena in
            context.log.notice("keyed data built for key \(key)")
            if try context.settings.bool("data_fail") == true { throw PluginError("the numbers cannot be had (data_fail)") }
            let values = try arena.append(contentsOf: (0..<count).map { UInt64($0) &* 2_654_435_761 &+ 1 })
            return KeyedNumbers(values: values)
        }
    }

    /// "data count N sum S at A": the sum proves the bytes are whole, the address that every
    /// generation maps them at the same place.
    public var summary: String {
        let sum = values.reduce(UInt64(0), &+)
        let address = values.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        return "data count \(values.count) sum \(sum) at 0x\(String(address, radix: 16))\n"
    }

    /// The versioned plugins' keyed routes: `/data` answers "version V " + the summary,
    /// `/write-data` writes into the data. False for any other path (or without keyed data).
    public static func answer(_ data: KeyedNumbers?, version: String, _ request: Request, _ response: Response) throws -> Bool {
        guard let data else { return false }
        if request.path.hasSuffix("/data") {
            try response.write("version \(version) " + data.summary)
            return true
        }
        if request.path.hasSuffix("/write-data") {
            data.write()
            return true
        }
        return false
    }

    /// Writes into the sealed data: the worker must die of it, alone, the log naming the data.
    public func write() {
        values.withUnsafeBufferPointer { UnsafeMutablePointer(mutating: $0.baseAddress!).pointee = 0 }
    }
}
