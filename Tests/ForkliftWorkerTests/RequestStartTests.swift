import CForkliftSys
@testable import ForkliftWorker
import Glibc
import Testing

/// The worker's buffer of a request's start (process-global, so serialized), in both of its
/// modes, on a socket pair: read once and served to libfcgi, or only peeked at.
@Suite(.serialized) struct RequestStartTests {
    /// Debian's libfcgi calls its OS_Read and OS_Write through its PLT: the executable's are
    /// the ones it gets, a worker reads each request's start once, and the connection's
    /// timeouts are applied in those calls. If this fails, workers only peek and set socket
    /// options (three system calls more per request).
    @Test func libfcgiReadsWhatTheWorkerReadAndWritesThroughIt() {
        let writes = LibfcgiWrites.count {
            #expect(RequestStart.prepare(capacity: 4096))
        }
        #expect(RequestStart.consumes)
        #expect(writes > 0, "its END_REQUEST went out through OS_Write")
    }

    @Test(arguments: [true, false]) func bytesAreHeldTakenAndHandedOnInOrder(consuming: Bool) throws {
        #expect(forklift_request_start_init(64, consuming ? 1 : 0) == 0)
        defer { RequestStart.release() }
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[0]); close(pair[1]) }
        let sent: [UInt8] = Array(0..<40)
        #expect(write(pair[0], sent, 10) == 10)
        RequestStart.begin(pair[1])
        #expect(RequestStart.receive(pair[1]) == 10)
        #expect(Array(RequestStart.bytes) == Array(sent[0..<10]))
        _ = sent.withUnsafeBytes { write(pair[0], $0.baseAddress! + 10, 30) }
        #expect(RequestStart.receive(pair[1]) == (consuming ? 30 : 40), "after what it holds, or all again")
        #expect(Array(RequestStart.bytes) == sent)
        // A management record of 8 bytes answered by the worker: gone, in either mode.
        #expect(RequestStart.consume(8, of: pair[1]))
        #expect(Array(RequestStart.bytes) == (consuming ? Array(sent[8...]) : []))
        #expect(RequestStart.pending(pair[1]) == (consuming ? 32 : 0))
        // libfcgi's read: first what is held, then the socket.
        var read = [UInt8](repeating: 0, count: 64)
        if consuming {
            #expect(OS_Read(pair[1], &read, 20) == 20)
            #expect(Array(read[0..<20]) == Array(sent[8..<28]))
            #expect(OS_Read(pair[1], &read, 64) == 12)
            #expect(Array(read[0..<12]) == Array(sent[28...]))
        } else {
            #expect(OS_Read(pair[1], &read, 64) == 32, "the socket itself, after the 8 bytes taken")
            #expect(Array(read[0..<32]) == Array(sent[8...]))
        }
        #expect(RequestStart.pending(pair[1]) == 0)
        // Another connection holds nothing of this one's.
        _ = write(pair[0], sent, 4)
        #expect(RequestStart.receive(pair[1]) == 4)
        RequestStart.begin(pair[0])
        #expect(RequestStart.bytes.isEmpty && RequestStart.pending(pair[1]) == 0)
    }

    @Test func aFullBufferSaysSo() throws {
        #expect(forklift_request_start_init(16, 1) == 0)
        defer { RequestStart.release() }
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[0]); close(pair[1]) }
        #expect(write(pair[0], [UInt8](repeating: 7, count: 20), 20) == 20)
        #expect(RequestStart.receive(pair[1]) == 16)
        #expect(RequestStart.isFull)
        #expect(RequestStart.receive(pair[1]) == -1 && errno == ENOBUFS)
    }
}
