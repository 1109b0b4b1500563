import CForkliftSys
import Glibc

/// Both ends of a pipe, close-on-exec. `nonBlocking` applies to both ends.
public struct Pipe {
    public let readEnd: Int32
    public let writeEnd: Int32

    public init(nonBlocking: Bool) throws {
        var fds: [Int32] = [-1, -1]
        let flags = O_CLOEXEC | (nonBlocking ? O_NONBLOCK : 0)
        try retryingSyscall("pipe2") { forklift_pipe2(&fds, flags) }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    public func close() {
        closeDescriptor(readEnd)
        closeDescriptor(writeEnd)
    }
}

/// close(2) that ignores EINTR (Linux releases the descriptor regardless) and EBADF of -1.
public func closeDescriptor(_ fd: Int32) {
    if fd >= 0 { _ = Glibc.close(fd) }
}

/// Writes all of `bytes`, retrying on EINTR and short writes.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
    var offset = 0
    while offset < bytes.count {
        let written = try retryingSyscall("write") {
            Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        }
        offset += written
    }
}

public func writeAll(_ fd: Int32, _ string: String) throws {
    var copy = string
    try copy.withUTF8 { try writeAll(fd, UnsafeRawBufferPointer($0)) }
}

/// Reads what is available now from a non-blocking descriptor. Returns nil at end of file.
public func readAvailable(_ fd: Int32, limit: Int = 65536) throws -> [UInt8]? {
    var buffer = [UInt8](repeating: 0, count: limit)
    while true {
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, limit) }
        if count > 0 { return Array(buffer[0..<count]) }
        if count == 0 { return nil }
        if errno == EINTR { continue }
        if errno == EAGAIN || errno == EWOULDBLOCK { return [] }
        throw SystemError("read", errno: errno)
    }
}

public func setNonBlocking(_ fd: Int32, _ on: Bool = true) throws {
    try retryingSyscall("fcntl(O_NONBLOCK)") { forklift_set_nonblocking(fd, on ? 1 : 0) }
}

public func setCloseOnExec(_ fd: Int32, _ on: Bool = true) throws {
    try retryingSyscall("fcntl(FD_CLOEXEC)") { forklift_set_cloexec(fd, on ? 1 : 0) }
}
