import Foundation
import ForkliftTestSupport
import Testing

/// log_format = "json" and access_log_format = "json": every line of the error log (a crash
/// record with its backtrace, the fault line a worker writes from its signal handler
/// included) and of the access log is one JSON object.
@Suite struct JSONLogTests {
    static func objects(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try #require(object as? [String: Any], "not an object: \(line)")
        }
    }

    @Test func everyErrorLogAndAccessLogLineIsAnObject() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\naccess_log = \"{dir}/access.log\"\naccess_log_format = \"json\"",
                                                          global: "log_format = \"json\""))
        defer { server.shutdown() }
        #expect(try FastCGIClient.get(server.www, "/behaviors/pid", query: "a=1").status == 200)
        #expect(try FastCGIClient.get(server.www, "/nothing").status == 404)
        // A write to sealed memory: the worker's fault line (C, in its signal handler), then the
        // host's crash record.
        _ = try? FastCGIClient.get(server.www, "/behaviors/scribble", timeout: 10)
        try server.waitForLog("SIGSEGV writing to read-only shared memory")
        try server.waitForLog("its stack:")
        #expect(try FastCGIClient.get(server.www, "/behaviors/pid").status == 200, "replaced")

        let lines = try Self.objects(server.log)
        for line in lines {
            #expect(line["time"] is String && line["level"] is String && line["process"] is String && line["pid"] is Int && line["message"] is String, "\(line)")
        }
        let ready = try #require(lines.first { ($0["message"] as? String)?.hasPrefix("forklift is ready") == true })
        #expect(ready["process"] as? String == "master" && ready["level"] as? String == "notice")
        #expect((ready["time"] as? String)?.hasSuffix("Z") == true)
        let fault = try #require(lines.first { ($0["message"] as? String)?.contains("SIGSEGV writing to read-only shared memory of") == true }, "\(server.log)")
        #expect(fault["process"] as? String == "worker" && fault["level"] as? String == "critical")
        let crash = try #require(lines.first { ($0["message"] as? String)?.contains("crashed (SIGSEGV); its stack:") == true })
        #expect(crash["pool"] as? String == "www" && crash["generation"] as? Int == 1)
        #expect((crash["message"] as? String)?.contains("\n") == true, "the backtrace stays in the one line's message")

        try server.waitForLog("\"uri\":\"/nothing\"", in: server.directory + "/access.log")
        let requests = try Self.objects(String(contentsOfFile: server.directory + "/access.log", encoding: .utf8))
        let first = try #require(requests.first)
        #expect(first["method"] as? String == "GET" && first["uri"] as? String == "/behaviors/pid" && first["query"] as? String == "a=1")
        #expect(first["status"] as? Int == 200 && first["plugin"] as? String == "behaviors" && first["pool"] as? String == "www")
        #expect(first["duration_ms"] is Double && first["memory_bytes"] is Int && first["remote_addr"] as? String == "127.0.0.1")
        let missing = try #require(requests.first { $0["uri"] as? String == "/nothing" })
        #expect(missing["status"] as? Int == 404 && missing["plugin"] is NSNull)
    }
}
