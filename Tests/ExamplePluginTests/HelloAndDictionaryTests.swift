import ForkliftTesting
import Testing

/// Hello and Dictionary through their built shared objects (the test binary links Echo's
/// type; a second plugin type would export a second entry symbol).
@Suite struct HelloAndDictionaryTests {
    @Test func helloGreetsWithItsSetting() throws {
        let hello = try PluginUnderTest(library: PluginUnderTest.built("Hello"), settings: ["greeting": "Bonjour"], route: "/hello")
        let response = hello.get("/hello")
        #expect(response.status == 200 && response.bodyText == "Bonjour, world!\n")
        #expect(try PluginUnderTest(library: PluginUnderTest.built("Hello")).get("/").bodyText == "Hello, world!\n")
    }

    @Test func theDictionaryPreloadsIntoSealedSharedMemory() throws {
        let dictionary = try PluginUnderTest(library: PluginUnderTest.built("Dictionary"), settings: ["size_mb": "1"], route: "/dict")
        #expect(dictionary.readOnlyRegions.contains { $0.label == "shared arena dictionary" }, "\(dictionary.readOnlyRegions)")
        #expect(dictionary.log.contains { $0.level == .info && $0.message.hasPrefix("dictionary preloaded: ") && $0.message.hasSuffix("1 MiB, shared layout") })
        let found = dictionary.get("/dict/word-42")
        #expect(found.status == 200 && found.bodyText.count > 60)
        let missing = dictionary.get("/dict/no-such-word")
        #expect(missing.status == 404 && missing.bodyText == "no such word: no-such-word\n")
        #expect(dictionary.get("/dict/stats").bodyText.hasPrefix("words "))
    }

    @Test func aFileThatIsNotAPluginIsRefusedWithTheReason() {
        do {
            _ = try PluginUnderTest(library: PluginUnderTest.built("ForkliftTestNotAPlugin"))
            Issue.record("not a plugin")
        } catch {
            #expect("\(error)".contains("exports no forklift_plugin_entry: not a Forklift plugin"), "\(error)")
        }
        #expect(throws: PluginTestError.self) { try PluginUnderTest(library: "/nonexistent/libX.so") }
    }
}
