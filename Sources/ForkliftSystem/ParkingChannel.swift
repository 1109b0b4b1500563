import CForkliftSys
import Glibc

/// A pool's channel for idle kept connections, between the master and the pool's workers: a
/// unix datagram socket pair whose messages each carry one connection (SCM_RIGHTS) and when
/// it went idle.
///
/// A worker that must give up an idle kept connection (it leaves, or a new client needs it)
/// sends the connection to the master instead of closing it: closing races with a web server
/// that picks the idle connection for its next request at that moment (nginx then fails the
/// request, and retries only idempotent ones). The master holds it until the client sends a
/// request on it, then sends it back, and whichever worker of the pool is free takes it, as
/// from the listener. Datagrams a worker writes reach only the master's end, and the other
/// way round, so every worker of every generation of the pool can share one end.
public struct ParkingChannel: Equatable {
    public let masterEnd: Int32
    public let workersEnd: Int32

    public init(masterEnd: Int32, workersEnd: Int32) {
        self.masterEnd = masterEnd
        self.workersEnd = workersEnd
    }

    /// Both ends non-blocking and close-on-exec.
    public static func make() throws -> ParkingChannel {
        var ends: [Int32] = [-1, -1]
        try retryingSyscall("socketpair") { socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) }
        return ParkingChannel(masterEnd: ends[0], workersEnd: ends[1])
    }

    public func close() {
        closeDescriptor(masterEnd)
        closeDescriptor(workersEnd)
    }

    /// Sends `connection` (which the caller still has to close) over `end`. Throws EAGAIN when
    /// the other side's queue is full.
    public static func send(_ connection: Int32, idleSince: MonotonicInstant, over end: Int32) throws {
        guard forklift_send_descriptor(end, connection, idleSince.nanoseconds) == 0 else { throw SystemError("sendmsg(SCM_RIGHTS)") }
    }

    /// Whether `fd` is a connected stream socket (what a worker may park), not a listener,
    /// a pipe or a datagram socket a plugin sent instead.
    public static func isConnectedStream(_ fd: Int32) -> Bool {
        func option(_ name: Int32) -> Int32? {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        return option(SO_TYPE) == Int32(SOCK_STREAM.rawValue) && option(SO_ACCEPTCONN) == 0
    }

    /// The next connection queued on `end`, nil when none is (another process took it).
    public static func receive(from end: Int32) throws -> (connection: Int32, idleSince: MonotonicInstant)? {
        var payload: UInt64 = 0
        let fd = forklift_receive_descriptor(end, &payload)
        if fd >= 0 { return (fd, MonotonicInstant(nanoseconds: payload)) }
        if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
        throw SystemError("recvmsg(SCM_RIGHTS)")
    }
}
