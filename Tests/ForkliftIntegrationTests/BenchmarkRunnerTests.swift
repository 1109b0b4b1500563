import Foundation
import ForkliftTestSupport
import Testing

/// benchmarks/peers.py stays runnable: its --quick mode, Forklift alone (no peer, no nginx, no
/// install), against this build, with the C load generator it compiles. Only that it runs and
/// every request is answered is checked; its figures are not tests.
@Suite struct BenchmarkRunnerTests {
    @Test func theQuickModeRunsForForkliftAlone() throws {
        let python = try #require(Command.find("python3"), "python3 runs the benchmarks")
        try #require(Command.find("cc") != nil, "cc builds the load generator")
        let results = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: results) }
        let run = try Command.run(python, [ForkliftServer.packageRoot + "/benchmarks/peers.py", "--quick", "--servers", "forklift",
                                           "--no-install", "--no-build", "--no-nginx", "--build", ForkliftServer.buildDirectory,
                                           "--results", results])
        #expect(run.status == 0, "\(run.output.suffix(3000))")
        let data = try Data(contentsOf: URL(fileURLWithPath: results + "/peers.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try #require(report["cases"] as? [String: [String: Any]])
        for key in ["hello_new", "hello_keep", "big64k", "echo1m", "sleep5", "c64"] {
            let servers = try #require(cases[key]?["servers"] as? [String: [String: Any]], "case \(key)")
            let forklift = try #require(servers["forklift"], "Forklift measured in \(key)")
            #expect((forklift["rps"] as? Double ?? 0) > 0, "\(key): requests answered")
            #expect(forklift["errors"] as? Int == 0, "\(key): no request failed its check")
        }
        // The fixed-rate cases: open loop, so never more than what was offered (a closed loop
        // answers Hello at several times 12,000/s here).
        for (key, offered) in ["hello_rate": 12_000.0, "big64k_rate": 3_000, "echo1m_rate": 400, "c64_rate": 16_000] {
            let servers = try #require(cases[key]?["servers"] as? [String: [String: Any]], "case \(key)")
            let forklift = try #require(servers["forklift"], "Forklift measured in \(key)")
            let rps = forklift["rps"] as? Double ?? 0
            #expect(rps > 0 && rps <= offered * 1.02, "\(key): \(rps)/s answered of \(offered)/s offered")
            #expect(forklift["errors"] as? Int == 0, "\(key): no request failed its check")
        }
        let idle = try #require(report["idle"] as? [String: [String: Any]])
        #expect(idle["forklift"]?["master"] != nil && idle["forklift"]?["host"] != nil, "idle cost of master and host")
        let recycling = try #require(report["recycling"] as? [String: Any])
        #expect(recycling["max_requests=100"] != nil && recycling["max_requests=0"] != nil)
        #expect(FileManager.default.fileExists(atPath: results + "/peers.md"))
    }
}
