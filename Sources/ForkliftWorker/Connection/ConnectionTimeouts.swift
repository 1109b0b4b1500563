import CForkliftSys
import Glibc

/// request_read_timeout and request_write_timeout on the worker's connections. Where libfcgi
/// reads and writes through this process (`RequestStart.consumes`: its OS_Read and OS_Write
/// are the executable's), each read and write applies them itself (connection_io.c): a
/// connection costs no system call for them, where two setsockopt(SO_RCVTIMEO, SO_SNDTIMEO)
/// per accepted connection did (a unix socket does not inherit them from its listener).
/// Otherwise they are set on each connection as socket options, as before.
struct ConnectionTimeouts {
    let read: Double
    let write: Double

    /// Also sets them for the process's timed reads and writes (one pool per worker).
    init(read: Double, write: Double) {
        self.read = read
        self.write = write
        forklift_io_timeouts(Self.milliseconds(read), Self.milliseconds(write))
    }

    /// A connection is the worker's now (accepted, or sent back by the master).
    func apply(to connection: Int32) {
        guard !RequestStart.consumes else { return }
        Self.set(connection, SO_RCVTIMEO, read)
        Self.set(connection, SO_SNDTIMEO, write)
    }

    /// All of `bytes` on `connection` within request_write_timeout (a record the worker
    /// answers itself); false when the client took too little of it for that long, or is gone.
    static func send(_ bytes: [UInt8], on connection: Int32) -> Bool {
        bytes.withUnsafeBytes { forklift_write_within(connection, $0.baseAddress, $0.count) == $0.count }
    }

    private static func milliseconds(_ seconds: Double) -> Int32 {
        seconds <= 0 ? 0 : Int32(min((seconds * 1000).rounded(.up), Double(Int32.max)))
    }

    private static func set(_ fd: Int32, _ option: Int32, _ seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
    }
}
