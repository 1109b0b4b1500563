import CForkliftSys
import Glibc

/// A host's channel to the master: a unix SOCK_SEQPACKET socket pair, one line per message,
/// and a message may carry one descriptor (SCM_RIGHTS): the sealed memfd of data a plugin
/// built, which the master keeps for later generations. Messages keep their order and their
/// boundaries, so a descriptor always arrives with the line that describes it, and before the
/// `ready` the host sends after it.
public struct ReportChannel {
    /// Non-blocking, close-on-exec: the master reads it in its poll.
    public let masterEnd: Int32
    /// Blocking: the host's; its workers close it.
    public let hostEnd: Int32

    /// One message as received.
    public struct Message {
        public let bytes: [UInt8]
        /// The descriptor it carried (close-on-exec, now the receiver's to close), or nil.
        public let descriptor: Int32?
    }

    public static func make() throws -> ReportChannel {
        var ends: [Int32] = [-1, -1]
        try retryingSyscall("socketpair") { socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) }
        do {
            try setNonBlocking(ends[0])
        } catch {
            closeDescriptor(ends[0])
            closeDescriptor(ends[1])
            throw error
        }
        return ReportChannel(masterEnd: ends[0], hostEnd: ends[1])
    }

    init(masterEnd: Int32, hostEnd: Int32) {
        self.masterEnd = masterEnd
        self.hostEnd = hostEnd
    }

    public func close() {
        closeDescriptor(masterEnd)
        closeDescriptor(hostEnd)
    }

    /// Sends `line` as one message, with `descriptor` attached if given (the caller keeps its own copy).
    public static func send(_ line: String, descriptor: Int32? = nil, over end: Int32) throws {
        var text = line
        try text.withUTF8 { bytes in
            guard forklift_send_message(end, bytes.baseAddress, bytes.count, descriptor ?? -1) == 0 else {
                throw SystemError("sendmsg")
            }
        }
    }

    /// The next message; nil at end of stream (the host and all its copies of the end are
    /// gone); an empty message when none is queued now.
    public static func receive(from end: Int32, limit: Int = 65536) throws -> Message? {
        var buffer = [UInt8](repeating: 0, count: limit)
        var descriptor: Int32 = -1
        let count = buffer.withUnsafeMutableBytes { forklift_receive_message(end, $0.baseAddress, limit, &descriptor) }
        if count > 0 { return Message(bytes: Array(buffer[0..<count]), descriptor: descriptor >= 0 ? descriptor : nil) }
        closeDescriptor(descriptor)
        if count == 0 { return nil }
        if errno == EAGAIN || errno == EWOULDBLOCK { return Message(bytes: [], descriptor: nil) }
        throw SystemError("recvmsg", errno: errno)
    }
}
