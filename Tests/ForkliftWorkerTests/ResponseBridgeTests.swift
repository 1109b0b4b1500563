import CFastCGI
import CForkliftSys
import Foundation
import ForkliftClient
import ForkliftTestSupport
@testable import ForkliftWorker
import Glibc
import Testing

/// A response through the bridge on a real libfcgi request (accepted on a unix socket in a
/// temporary folder), read by a client record by record.
@Suite struct ResponseBridgeTests {
    /// A large write takes what libfcgi's buffer holds (the head lines) into its own call:
    /// flushed apart, they woke the client once more for every response. The client sees
    /// the same stream: the head as libfcgi would frame it, then the body, then the end.
    @Test func aLargeWriteSendsTheHeadInItsOwnCall() throws {
        let directory = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/bridge.sock"
        #expect(FCGX_Init() == 0)
        let listener = FCGX_OpenSocket(path, 4)
        try #require(listener >= 0)
        defer { close(listener) }
        let client = try FastCGIClient.connect(.unix(path), timeout: 20)
        defer { close(client) }
        try FastCGIClient.sendAll(client, FastCGIRecords.request(params: FastCGIClient.cgiParams(path: "/large"), body: [], keepConnection: false))

        var request = FCGX_Request()
        #expect(FCGX_InitRequest(&request, listener, 0) == 0)
        #expect(FCGX_Accept_r(&request) == 0)
        let response = ResponseBridge(request: &request)
        #expect(response.addHeader("X-Test", "head"))
        let body = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let writes = LibfcgiWrites.count {
            #expect(body.withUnsafeBytes { response.write($0) })
        }
        #expect(writes == 0, "libfcgi wrote nothing itself: the head went with the body")
        shutdown(request.ipcFd, Int32(SHUT_RD)) // as the Dispatcher does: no lingering close
        FCGX_Finish_r(&request)

        let records = try FastCGIClient.readRecords(client)
        let stdout = records.filter { $0.type == FastCGIRecords.RecordType.stdout.rawValue }
        let head = "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Test: head\r\n\r\n"
        #expect(stdout.first.map { String(decoding: $0.content, as: UTF8.self) } == head, "the head, as one record of its own")
        #expect(stdout.dropFirst().flatMap(\.content) == body, "then the body, every byte in order")
        #expect(records.allSatisfy { $0.requestID == 1 && ($0.content.count + $0.paddingLength) % 8 == 0 }, "the request's id, padded to 8")
        #expect(stdout.last?.content.isEmpty == true, "the stream's end before END_REQUEST")
    }
}
