import Glibc

/// A process's memory as /proc/PID/smaps_rollup counts it, in bytes. The figures that tell
/// whether preloaded data is still shared: `privateDirty` grows when a worker un-shares
/// pages; `pss` divides shared pages among the processes sharing them.
public struct MemoryUsage: Equatable, Sendable {
    public var pss = 0
    public var privateDirty = 0
    public var sharedClean = 0
    public var sharedDirty = 0

    public init(pss: Int = 0, privateDirty: Int = 0, sharedClean: Int = 0, sharedDirty: Int = 0) {
        self.pss = pss
        self.privateDirty = privateDirty
        self.sharedClean = sharedClean
        self.sharedDirty = sharedDirty
    }

    /// Reads /proc/PID/smaps_rollup; nil if the process is gone.
    public static func of(_ pid: pid_t) -> MemoryUsage? {
        guard let file = fopen("/proc/\(pid)/smaps_rollup", "r") else { return nil }
        defer { fclose(file) }
        var usage = MemoryUsage()
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let parts = text.split(whereSeparator: { $0 == " " || $0 == ":" || $0 == "\n" })
            guard parts.count >= 2, let kib = Int(parts[1]) else { continue }
            switch parts[0] {
            case "Pss": usage.pss = kib * 1024
            case "Private_Dirty": usage.privateDirty = kib * 1024
            case "Shared_Clean": usage.sharedClean = kib * 1024
            case "Shared_Dirty": usage.sharedDirty = kib * 1024
            default: break
            }
        }
        return usage
    }

    public static func + (a: MemoryUsage, b: MemoryUsage) -> MemoryUsage {
        MemoryUsage(pss: a.pss + b.pss, privateDirty: a.privateDirty + b.privateDirty,
                    sharedClean: a.sharedClean + b.sharedClean, sharedDirty: a.sharedDirty + b.sharedDirty)
    }

    /// "Pss 93.1 MiB, Private_Dirty 0.4 MiB, Shared_Clean 6.0 MiB, Shared_Dirty 87.2 MiB"
    public var description: String {
        let mib = Formatting.mebibytes
        return "Pss \(mib(pss)), Private_Dirty \(mib(privateDirty)), Shared_Clean \(mib(sharedClean)), Shared_Dirty \(mib(sharedDirty))"
    }
}
