import CForkliftSys
import Glibc

/// An eventfd(2), close-on-exec: one process posts a number, another that waits on it
/// (poll, then `take`) reads it. Kept by both sides of a fork.
///
/// Its wake-up is not a "sync" one, as a pipe's or a unix socket's is: the kernel does not
/// assume the writer is about to sleep, so the woken process goes to an idle core rather than
/// queueing behind the writer on its own (measured for standby_workers: a standby woken through
/// a pipe waited 1-1.5 ms on the host's core behind whatever ran there).
public struct EventCounter {
    public let fileDescriptor: Int32

    public init() throws {
        fileDescriptor = try retryingSyscall("eventfd") { forklift_eventfd_cloexec() }
    }

    /// One made before a fork, by its descriptor.
    public init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    /// Adds `value` (above 0) to the counter, waking its reader.
    public func post(_ value: UInt64) throws {
        var value = value
        let written = try retryingSyscall("write(eventfd)") { withUnsafeBytes(of: &value) { Glibc.write(fileDescriptor, $0.baseAddress, 8) } }
        guard written == 8 else { throw SystemError("write(eventfd)", errno: EIO) }
    }

    /// The counter's value, reset to 0; blocks while it is 0.
    public func take() throws -> UInt64 {
        var value: UInt64 = 0
        let count = try retryingSyscall("read(eventfd)") { withUnsafeMutableBytes(of: &value) { Glibc.read(fileDescriptor, $0.baseAddress, 8) } }
        guard count == 8 else { throw SystemError("read(eventfd)", errno: EIO) }
        return value
    }

    public func close() { closeDescriptor(fileDescriptor) }
}
