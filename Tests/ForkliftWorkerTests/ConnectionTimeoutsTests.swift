import CForkliftSys
import Foundation
@testable import ForkliftWorker
import Glibc
import Testing

/// A connection's reads and writes with the pool's timeouts in the call (connection_io.c),
/// on a socket pair: what they return at once, and when the other end stops.
@Suite(.serialized) struct ConnectionTimeoutsTests {
    /// A blocking socket pair, as an accepted connection is.
    func pair() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    @Test func aReadReturnsWhatIsThereAndTimesOutWhenNothingComes() {
        _ = ConnectionTimeouts(read: 0.2, write: 0.2)
        let (client, worker) = pair()
        defer { close(client); close(worker) }
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(write(client, "abc", 3) == 3)
        #expect(forklift_read_within(worker, &buffer, 16) == 3)
        let started = Date()
        #expect(forklift_read_within(worker, &buffer, 16) == -1 && errno == EAGAIN)
        #expect(Date().timeIntervalSince(started) >= 0.19, "after request_read_timeout, not at once")
        // The client's end: 0, at once.
        shutdown(client, Int32(SHUT_WR))
        #expect(forklift_read_within(worker, &buffer, 16) == 0)
    }

    @Test func aWriteGoesOutWholeOrTimesOutWhenTheClientStopsReading() {
        _ = ConnectionTimeouts(read: 0.2, write: 0.2)
        let (client, worker) = pair()
        defer { close(client); close(worker) }
        let chunk = [UInt8](repeating: 7, count: 1 << 16)
        #expect(forklift_write_within(worker, chunk, chunk.count) == chunk.count)
        // Nobody reads: the socket's buffer fills, then the write gives up.
        let started = Date()
        var result = 0
        for _ in 0..<256 {
            result = forklift_write_within(worker, chunk, chunk.count)
            if result < 0 { break }
        }
        #expect(result == -1 && errno == EAGAIN)
        #expect(Date().timeIntervalSince(started) >= 0.19, "after request_write_timeout, not at once")
        // A gone client: an error at once, and no SIGPIPE.
        close(client)
        #expect(forklift_write_within(worker, chunk, 16) == -1 && errno == EPIPE)
    }
}
