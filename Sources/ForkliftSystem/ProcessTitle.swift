import CForkliftSys
import Glibc

/// What `ps` shows for this process, e.g. `forklift: worker pool=www gen=1`.
public enum ProcessTitle {
    public static func set(_ title: String) {
        forklift_set_process_title(title)
        // The 15-byte comm (top, pidof) stays "forklift"; only the role changes.
        _ = forklift_set_name(String(title.prefix(15)))
    }

    /// Another process's name for a log line: its 15-byte comm ("sleep"), "?" when it is gone.
    public static func of(_ pid: pid_t) -> String {
        guard let file = fopen("/proc/\(pid)/comm", "r") else { return "?" }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
