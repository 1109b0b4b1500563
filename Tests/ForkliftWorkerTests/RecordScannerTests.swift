@testable import ForkliftWorker
import Testing

/// Builds FastCGI records for the scanner.
enum Records {
    static func record(_ type: UInt8, id: UInt16 = 1, _ content: [UInt8], padding: Int? = nil) -> [UInt8] {
        let pad = padding ?? (8 - content.count % 8) % 8
        return [1, type, UInt8(id >> 8), UInt8(id & 0xFF), UInt8(content.count >> 8), UInt8(content.count & 0xFF), UInt8(pad), 0]
            + content + [UInt8](repeating: 0, count: pad)
    }

    static func length(_ n: Int) -> [UInt8] {
        n < 128 ? [UInt8(n)] : [UInt8((n >> 24) & 0x7F) | 0x80, UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
    }

    static func pairs(_ params: [(String, String)]) -> [UInt8] {
        params.flatMap { length($0.0.utf8.count) + length($0.1.utf8.count) + Array($0.0.utf8) + Array($0.1.utf8) }
    }

    static func begin(role: UInt16 = 1, keep: Bool = false, id: UInt16 = 1) -> [UInt8] {
        record(1, id: id, [UInt8(role >> 8), UInt8(role & 0xFF), keep ? 1 : 0, 0, 0, 0, 0, 0])
    }

    static func request(_ params: [(String, String)] = [("SCRIPT_NAME", "/hello"), ("REQUEST_METHOD", "GET")]) -> [UInt8] {
        begin() + record(4, pairs(params)) + record(4, []) + record(5, [])
    }
}

@Suite struct RecordScannerTests {
    let scanner = RecordScanner(maxParamsSize: 4096)

    func scan(_ bytes: [UInt8]) -> RecordScanner.Outcome {
        bytes.withUnsafeBytes { scanner.scan($0) }
    }

    @Test func aCompleteRequestIsCompleteAndEveryPrefixIsIncomplete() {
        let bytes = Records.request()
        #expect(scan(bytes) == .complete(stdinEnded: true))
        let endOfParams = bytes.count - 8 // the empty STDIN record is not needed
        for cut in 0..<(endOfParams) {
            #expect(scan(Array(bytes.prefix(cut))) == .incomplete, "cut at \(cut)")
        }
        for cut in endOfParams..<bytes.count {
            #expect(scan(Array(bytes.prefix(cut))) == .complete(stdinEnded: false), "cut at \(cut): not all of the STDIN record")
        }
    }

    /// Only the request's own empty STDIN right after the params says the body has ended.
    @Test func theEndOfStdinIsSeenOnlyWhenItFollowsTheParams() {
        let head = Records.begin() + Records.record(4, Records.pairs([("SCRIPT_NAME", "/echo")])) + Records.record(4, [])
        #expect(scan(head + Records.record(5, [])) == .complete(stdinEnded: true))
        #expect(scan(head + Records.record(5, Array("body".utf8)) + Records.record(5, [])) == .complete(stdinEnded: false), "a body")
        #expect(scan(head + Records.record(5, id: 2, [])) == .complete(stdinEnded: false), "another request's")
        #expect(scan(head + Records.record(2, [])) == .complete(stdinEnded: false), "an abort")
    }

    @Test func aPairSpanningTwoRecordsAndLongLengths() {
        let long = String(repeating: "x", count: 300)
        let encoded = Records.pairs([("HTTP_COOKIE", long), ("A", "")])
        // Split everywhere, inside the 4-byte lengths too: a length read wrong leaves the
        // stream's end in the middle of a value (malformed) or past the limit.
        for cut in 1..<encoded.count {
            let bytes = Records.begin() + Records.record(4, Array(encoded.prefix(cut))) + Records.record(4, Array(encoded.dropFirst(cut))) + Records.record(4, [])
            #expect(scan(bytes) == .complete(stdinEnded: false), "split at \(cut)")
        }
        let oneShort = Records.begin() + Records.record(4, Array(encoded.dropLast())) + Records.record(4, [])
        #expect(scan(oneShort) == .malformed("PARAMS: the stream ends in the middle of a name or value"))
    }

    /// The record that aborts libfcgi 2.4.2: a PARAMS name length of 0x7ffffffe. Refused as
    /// soon as its lengths are in, long before anything would be allocated for it.
    @Test func aHugeDeclaredLengthIsRefusedAtOnce() {
        let lengths: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFE, 0x01]
        let bytes = Records.begin() + Records.record(4, lengths, padding: 0)
        #expect(scan(bytes) == .tooLarge(4096))
        // Even before the record's content is complete.
        #expect(scan(Records.begin() + [1, 4, 0, 1, 0x7F, 0xFF, 0, 0] + lengths) == .tooLarge(4096))
    }

    @Test func paramsOverTheLimitAreTooLarge() {
        let params = (0..<100).map { ("HTTP_X_\($0)", String(repeating: "v", count: 40)) }
        #expect(scan(Records.request(params)) == .tooLarge(4096))
        #expect(RecordScanner(maxParamsSize: 1 << 20).scan(Records.request(params).withUnsafeBytes { $0 }) == .complete(stdinEnded: true))
    }

    /// The limit counts the pairs' bytes, lengths included, to the byte: the same whether the
    /// pairs lie whole in one record (read in one pass) or are cut by the records' ends (read
    /// byte by byte across them).
    @Test func theLimitIsExactInOneRecordAndAcrossRecords() {
        let encoded = Records.pairs((0..<50).map { ("HTTP_X_\($0)", String(repeating: "v", count: $0 % 2 == 0 ? 60 : 200)) }) // 1- and 4-byte lengths
        for limit in [encoded.count - 1, encoded.count, encoded.count + 1] {
            let scanner = RecordScanner(maxParamsSize: limit)
            let expected: RecordScanner.Outcome = limit >= encoded.count ? .complete(stdinEnded: false) : .tooLarge(limit)
            let whole = Records.begin() + Records.record(4, encoded) + Records.record(4, [])
            #expect(whole.withUnsafeBytes { scanner.scan($0) } == expected, "limit \(limit), one record")
            for cut in stride(from: 1, to: encoded.count, by: 37) {
                let split = Records.begin() + Records.record(4, Array(encoded.prefix(cut))) + Records.record(4, Array(encoded.dropFirst(cut))) + Records.record(4, [])
                #expect(split.withUnsafeBytes { scanner.scan($0) } == expected, "limit \(limit), split at \(cut)")
            }
        }
    }

    /// GET_VALUES naming FCGI_MPXS_CONNS four times smashes libfcgi's 64-byte answer buffer:
    /// management records are answered by the worker, never passed to libfcgi.
    @Test func managementRecordsComeOutForTheWorkerToAnswer() {
        let names = (0..<4).map { _ in ("FCGI_MPXS_CONNS", "") }
        let getValues = Records.record(9, id: 0, Records.pairs(names))
        #expect(scan(getValues + Records.request()) == .management(.getValues(Array(repeating: "FCGI_MPXS_CONNS", count: 4)), length: getValues.count))
        let unknown = Records.record(42, id: 0, [1, 2, 3])
        #expect(scan(unknown) == .management(.unknown(type: 42), length: unknown.count))
        #expect(scan(Array(getValues.prefix(10))) == .incomplete)
    }

    @Test func anUnknownRoleIsReportedWithItsRequest() {
        #expect(scan(Records.begin(role: 7, id: 3)) == .unknownRole(requestID: 3, role: 7))
        #expect(scan(Records.begin(role: 2) + Records.record(4, [])) == .complete(stdinEnded: false), "AUTHORIZER is libfcgi's to serve")
    }

    static let malformed: [(bytes: [UInt8], reason: String)] = {
        var cases: [([UInt8], String)] = []
        cases.append(([2, 1, 0, 1, 0, 8, 0, 0] + [UInt8](repeating: 0, count: 8), "version 2"))
        cases.append((Records.record(4, Records.pairs([("A", "b")])), "PARAMS before BEGIN_REQUEST"))
        cases.append((Records.begin() + Records.record(5, [1, 2]), "type 5 before the end of the params"))
        cases.append((Records.begin() + Records.begin(), "a second BEGIN_REQUEST"))
        cases.append((Records.begin() + Records.record(4, [3, 0, 65]) + Records.record(4, []), "ends in the middle of a name"))
        cases.append((Records.begin() + Records.record(2, []), "aborted"))
        cases.append((Records.begin() + Records.record(4, id: 2, []), "PARAMS of request 2"))
        cases.append((Records.begin() + Records.record(9, id: 0, []), "management record"))
        return cases
    }()

    @Test(arguments: 0..<8)
    func malformedBeginningsAreRefused(index: Int) {
        let (bytes, reason) = Self.malformed[index]
        guard case .malformed(let message) = scan(bytes) else {
            Issue.record("expected malformed (\(reason)), got \(scan(bytes))")
            return
        }
        #expect(message.contains(reason), "\(message)")
    }
}
