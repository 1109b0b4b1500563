import CForkliftSys
import Foundation
import ForkliftClient
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

    /// A large response's records (ResponseBridge.write): every byte in order, in records of up
    /// to 65528 content bytes padded to a multiple of 8, through partial writes; and given up
    /// when the client stops reading.
    @Test func stdoutRecordsCarryEveryByteInOrderAndTimeOutWhenTheClientStopsReading() throws {
        // A reading thread put aside for a while on a busy machine is not a client that stopped.
        _ = ConnectionTimeouts(read: 10, write: 10)
        let (client, worker) = pair()
        defer { close(client); close(worker) }
        // More than one sendmsg's 16 records, and an odd length: the last record is padded.
        let bytes = (0..<(1 << 20) * 3 + 5).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 10) }
        // The client reads record by record (a header, then its content), while the worker's
        // sendmsg calls are cut short by the socket's buffer.
        let box = Received()
        let done = DispatchSemaphore(value: 0)
        Thread {
            while let record = try? FastCGIClient.readRecord(client) { box.records.append(record) }
            done.signal()
        }.start()
        // What libfcgi's 8 KiB buffer holds goes first: after the 8 bytes it reserves for a
        // header, the CGI headers (an odd length: padded too).
        let headers = Array("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n".utf8)
        var held = [UInt8](repeating: 0xEE, count: 8192)
        held.replaceSubrange(8..<8 + headers.count, with: headers)
        #expect(forklift_write_stdout(worker, 0x1234, &held, 8 + headers.count, bytes, bytes.count) == bytes.count)
        shutdown(worker, Int32(SHUT_WR))
        done.wait()
        let records = box.records
        #expect(records.allSatisfy { $0.type == 6 && $0.requestID == 0x1234 }, "FCGI_STDOUT, the request's id")
        #expect(records.allSatisfy { ($0.content.count + $0.paddingLength) % 8 == 0 && $0.paddingLength < 8 }, "padded to a multiple of 8, as libfcgi pads")
        #expect(records.first?.content == headers, "libfcgi's bytes first, as one record")
        #expect(records.dropFirst().flatMap(\.content) == bytes, "every byte, in order, in whole records")
        #expect(records.dropFirst().map(\.content.count).max() == 65528 && records.count == 1 + (bytes.count + 65527) / 65528)

        // Nobody reads: the socket's buffer fills, then the write gives up.
        _ = ConnectionTimeouts(read: 0.2, write: 0.2)
        let (quiet, other) = pair()
        defer { close(quiet); close(other) }
        let started = Date()
        #expect(forklift_write_stdout(other, 1, nil, 0, bytes, bytes.count) == -1 && errno == EAGAIN)
        #expect(Date().timeIntervalSince(started) >= 0.19, "after request_write_timeout, not at once")
    }
}

/// What the reading thread received.
private final class Received: @unchecked Sendable {
    var records: [FastCGIRecord] = []
}
