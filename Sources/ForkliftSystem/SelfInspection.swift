import CForkliftSys
import Glibc

/// Facts about this process that decide whether forking it is safe.
public enum SelfInspection {
    /// Threads in this process (entries of /proc/self/task). A process with more than one
    /// must not fork: the child gets only the forking thread, and any lock another thread
    /// held stays locked forever.
    public static func threadCount() -> Int {
        guard let directory = opendir("/proc/self/task") else { return 1 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        return count
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
