import Foundation
import ForkliftTestSupport
import Testing

/// A plugin's large write leaves in FastCGI records of up to 64 KiB sent straight from its
/// bytes (ResponseBridge.write), not copied through libfcgi's 8 KiB buffer: the client reads
/// the same stream, in order after what libfcgi held, padded as libfcgi pads, and the
/// connection stays in step for the next request.
@Suite struct LargeResponseTests {
    @Test func aLargeWriteGoesOutInRecordsOfUpTo64KiBAfterWhatLibfcgiHeld() throws {
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 1))
        defer { server.shutdown() }
        let fd = try rawConnection(server.directory + "/www.sock")
        defer { close(fd) }
        // A worker that stalls fails the test rather than hanging it.
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // Echo writes its head lines (small: libfcgi's buffer), then the body in one write.
        let body = (0..<(1 << 20) + 3).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        for round in 1...2 { // the connection kept: the second request finds it in step
            let params = FastCGIClient.cgiParams(method: "POST", path: "/echo/large", bodyLength: body.count)
            try FastCGIClient.sendAll(fd, FastCGIRecords.request(params: params, body: body, keepConnection: true))
            let records = try FastCGIClient.readRecords(fd)
            let stdout = records.filter { $0.type == FastCGIRecords.RecordType.stdout.rawValue }
            let text = stdout.flatMap(\.content)
            let head = String(decoding: text.prefix(text.count - body.count), as: UTF8.self)
            #expect(head.hasPrefix("Status: 200 OK\r\n") && head.hasSuffix("body-length: \(body.count)\n\n"), "round \(round): \(head)")
            #expect(Array(text.suffix(body.count)) == body, "round \(round): the body, every byte in order after the head")
            #expect(records.allSatisfy { $0.requestID == 1 && ($0.content.count + $0.paddingLength) % 8 == 0 }, "round \(round): the request's id, padded to 8")
            let largest = stdout.map(\.content.count).max() ?? 0
            #expect(largest == 65528, "round \(round): records of 64 KiB, not libfcgi's 8 KiB (the largest had \(largest) bytes)")
            #expect(stdout.last?.content.isEmpty == true && records.last?.type == FastCGIRecords.RecordType.endRequest.rawValue, "round \(round): the stream's end, then END_REQUEST")
        }
    }
}
