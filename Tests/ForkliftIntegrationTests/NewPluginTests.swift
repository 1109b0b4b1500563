import Foundation
import ForkliftTestSupport
import Testing

/// `forklift new-plugin demo` in a temporary folder: the package it writes builds, its own
/// test (ForkliftTesting, in-process and through the .so) passes, and Forklift serves it.
@Suite struct NewPluginTests {
    @Test func theGeneratedPackageBuildsPassesItsTestAndServes() throws {
        let directory = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let created = try Command.run(ForkliftServer.binary, ["new-plugin", "demo", "--directory", directory + "/demo"])
        #expect(created.status == 0, "\(created.output)")
        #expect(created.output.contains("created plugin Demo in \(directory)/demo"))
        let snippet = try String(contentsOfFile: directory + "/demo/conf.d/demo.toml", encoding: .utf8)
        #expect(snippet.contains("[pool.www.plugin.demo]") && snippet.contains("path = \"\(directory)/demo/.build/release/libDemo.so\""))

        // swift test builds the library product too; its test loads both ways.
        let swift = try #require(Command.find("swift"))
        let tested = try Command.run(swift, ["test", "--package-path", directory + "/demo"])
        #expect(tested.status == 0, "\(tested.output.suffix(3000))")
        #expect(tested.output.contains("2 tests") && tested.output.contains("passed"), "\(tested.output.suffix(1000))")

        let library = directory + "/demo/.build/debug/libDemo.so"
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock", children: 1)
            + snippet.replacingOccurrences(of: "\(directory)/demo/.build/release/libDemo.so", with: library)
                     .replacingOccurrences(of: "greeting = \"Hello\"", with: "greeting = \"Howdy\""))
        defer { server.shutdown() }
        let response = try FastCGIClient.get(.unix(server.directory + "/www.sock"), "/demo/x")
        #expect(response.status == 200 && response.bodyText == "Howdy from demo: GET /demo/x\n")
    }

    @Test func aBadNameOrAFullDirectoryIsRefused() throws {
        let directory = try TemporaryDirectory.make()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bad = try Command.run(ForkliftServer.binary, ["new-plugin", "9lives", "--directory", directory + "/x"])
        #expect(bad.status != 0 && bad.output.contains("plugin name \"9lives\": expected letters"), "\(bad.output)")
        let versionWithoutURL = try Command.run(ForkliftServer.binary, ["new-plugin", "demo", "--directory", directory + "/y", "--from", "1.0.0"])
        #expect(versionWithoutURL.status != 0 && versionWithoutURL.output.contains("--from 1.0.0 goes with --forklift URL"), "\(versionWithoutURL.output)")
        let urlWithoutVersion = try Command.run(ForkliftServer.binary, ["new-plugin", "demo", "--directory", directory + "/z", "--forklift", "https://example.org/forklift.git"])
        #expect(urlWithoutVersion.status != 0 && urlWithoutVersion.output.contains("is a URL: give the version"), "\(urlWithoutVersion.output)")
        try "x".write(toFile: directory + "/taken", atomically: true, encoding: .utf8)
        let full = try Command.run(ForkliftServer.binary, ["new-plugin", "demo", "--directory", directory])
        #expect(full.status != 0 && full.output.contains("\(directory) exists and is not empty"), "\(full.output)")
    }
}
