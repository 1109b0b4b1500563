import CForkliftSys
import Glibc

/// Facts about this process that decide whether forking it is safe.
public enum SelfInspection {
    /// Threads in this process (entries of /proc/self/task). A process with more than one
    /// must not fork: the child gets only the forking thread, and any lock another thread
    /// held stays locked forever.
    public static func threadCount() -> Int {
        max(1, ProcessTree.threads(of: getpid()).count)
    }

    /// The descriptors open in this process, from /proc/self/fd.
    public static func openDescriptors() -> [Int32] {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        let own = dirfd(directory)
        var fds: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name), fd != own { fds.append(fd) }
        }
        closedir(directory)
        return fds
    }

    /// Closes every descriptor but stdio and `keep`. A forked child inherits everything its
    /// parent had open: another pool's socket, a control client waiting for its answer. Held
    /// open by a child, those never close when the parent closes them.
    public static func closeDescriptors(except keep: Set<Int32>) {
        for fd in openDescriptors() where fd > 2 && !keep.contains(fd) {
            closeDescriptor(fd)
        }
    }

    /// Bytes written to stdout/stderr through stdio and not yet flushed; each forked child
    /// would print them again.
    public static func unflushedStdioBytes() -> Int {
        Int(forklift_stdio_pending())
    }
}

/// Processes by parent, from /proc (for the memory figures of a host's workers).
public enum ProcessTree {
    /// The live children of `parent`.
    public static func children(of parent: pid_t) -> [pid_t] {
        numericEntries(of: "/proc").filter { parentOf($0) == parent }
    }

    /// The thread ids of `pid` (its main thread's is `pid`), from /proc/PID/task.
    public static func threads(of pid: pid_t) -> [pid_t] {
        numericEntries(of: "/proc/\(pid)/task")
    }

    /// The entries of a /proc directory that are numbers: pids, thread ids.
    static func numericEntries(of path: String) -> [pid_t] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var result: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let number = pid_t(name) { result.append(number) }
        }
        return result
    }

    static func parentOf(_ pid: pid_t) -> pid_t? {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, 512, file) != nil else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }
}
