import ForkliftSystem
import Glibc

/// A region of shared anonymous memory: created by the master before a fork, so that every
/// process forked afterwards sees the same bytes. One value owns it and unmaps it once.
public final class SharedMapping: @unchecked Sendable {
    public let address: UnsafeMutableRawPointer
    public let size: Int
    private var mapped = true

    /// `size` bytes, zeroed, rounded up to whole pages.
    public init(size: Int) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let rounded = (size + page - 1) / page * page
        guard let memory = mmap(nil, rounded, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0), memory != MAP_FAILED else {
            throw SystemError("mmap(\(rounded) bytes of scoreboard)")
        }
        address = memory
        self.size = rounded
    }

    /// Unmaps it in this process (others keep their mapping).
    public func unmap() {
        guard mapped else { return }
        mapped = false
        munmap(address, size)
    }

    deinit { unmap() }
}
