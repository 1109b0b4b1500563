import Dispatch
import Foundation
import ForkliftPlugin
import Synchronization
@testable import Echo
import ForkliftTesting
import Testing

/// The Echo example, tested as a plugin author tests a handler: in-process from its Swift
/// type, and from its built shared object through the plugin ABI. Both must agree.
@Suite struct EchoTests {
    enum Loading: String, CaseIterable, CustomTestStringConvertible {
        case inProcess, sharedObject
        var testDescription: String { rawValue }

        func load(settings: [String: String] = [:], maxBodySize: Int = 0) throws -> PluginUnderTest {
            switch self {
            case .inProcess: try PluginUnderTest(Echo.self, settings: settings, route: "/echo", maxBodySize: maxBodySize)
            case .sharedObject: try PluginUnderTest(library: PluginUnderTest.built("Echo"), settings: settings, route: "/echo", maxBodySize: maxBodySize)
            }
        }
    }

    @Test(arguments: Loading.allCases) func echoesMethodPathParamsAndBody(loading: Loading) throws {
        let echo = try loading.load()
        #expect(echo.name == "echo" && echo.version == "1.0.0")
        let response = echo.post("/echo/x?a=1", body: "hello", headers: [("X-Trace", "t1")])
        #expect(response.status == 200 && response.failure == nil)
        #expect(response.header("content-type") == "text/plain; charset=utf-8", "the host's default")
        let text = response.bodyText
        #expect(text.hasPrefix("method: POST\npath: /echo/x\n"))
        for line in ["param: QUERY_STRING=a=1", "param: CONTENT_LENGTH=5", "param: HTTP_X_TRACE=t1", "body-length: 5"] {
            #expect(text.contains(line + "\n"), "\(line)")
        }
        #expect(text.hasSuffix("\n\nhello"))
        #expect(response.bodyBytesRead == 5)
    }

    /// `Request.body()` allocates what CONTENT_LENGTH declares and reads into it; a body that
    /// is longer, shorter, or declared wrongly, comes whole all the same.
    @Test(arguments: Loading.allCases, ["", "2", "100", "none", "-3"])
    func theWholeBodyWhateverContentLengthSays(loading: Loading, declared: String) throws {
        let echo = try loading.load()
        let body = [UInt8]((0..<70_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let response = echo.post("/echo", body: body, params: [("CONTENT_LENGTH", declared)])
        #expect(response.status == 200)
        #expect(response.bodyText.contains("body-length: 70000\n"))
        #expect(Array(response.body.suffix(body.count)) == body)
    }

    /// Past the 16 MiB read in one piece, the rest comes through the growing tail.
    @Test(arguments: Loading.allCases) func aBodyOverSixteenMiBComesWhole(loading: Loading) throws {
        let echo = try loading.load(settings: ["max_body": "\(20 << 20)"])
        // A body 64 KiB past 16 MiB, its last bytes marked (cheap to build and to check in a debug build).
        var body = [UInt8](repeating: 0x61, count: (16 << 20) + 65536)
        body.replaceSubrange((body.count - 4)..., with: Array("tail".utf8))
        let response = echo.post("/echo", body: body)
        #expect(response.status == 200)
        #expect(response.body.count > body.count && Array(response.body.suffix(8)) == Array("aaaatail".utf8))
        #expect(String(decoding: response.body.prefix(4096), as: UTF8.self).contains("body-length: \(body.count)\n"))
    }

    @Test(arguments: Loading.allCases) func aBodyOverItsMaxBodySettingIs413(loading: Loading) throws {
        let echo = try loading.load(settings: ["max_body": "4"])
        let response = echo.post("/echo", body: "too long")
        #expect(response.status == 413)
        #expect(response.bodyText == "request body larger than 4 bytes\n")
    }

    @Test(arguments: Loading.allCases) func theHostsMaxBodySizeStopsTheReadAt413(loading: Loading) throws {
        let echo = try loading.load(maxBodySize: 3)
        let response = echo.post("/echo", body: "four")
        #expect(response.status == 413, "the read failed past max_body_size and nothing was written")
        #expect(response.failure != nil)
    }

    @Test func aBadSettingFailsThePreloadWithItsMessage() {
        #expect(throws: PluginTestError.self) { try PluginUnderTest(Echo.self, settings: ["max_body": "lots"]) }
        do {
            _ = try PluginUnderTest(library: PluginUnderTest.built("Echo"), settings: ["max_body": "lots"])
            Issue.record("a bad setting must fail the preload")
        } catch {
            #expect("\(error)".contains("setting max_body: expected an integer, got \"lots\""), "\(error)")
        }
    }
}

/// An in-process preload seals what its own thread built, not an arena another test is still
/// filling on another thread (the SDK sealed every arena in the process, and a parallel
/// test's next allocation trapped: "shared arena ... is sealed").
@Suite struct InProcessSealingTests {
    @Test func aPreloadSealsOnlyTheArenasOfItsOwnThread() throws {
        let filled = Mutex<SharedArena?>(nil)
        let created = DispatchSemaphore(value: 0), preloaded = DispatchSemaphore(value: 0)
        let other = Thread {
            filled.withLock { $0 = try? SharedArena(capacity: 1 << 16, label: "another test's") }
            created.signal()
            preloaded.wait()
        }
        other.start()
        created.wait()
        _ = try PluginUnderTest(Echo.self)
        preloaded.signal()
        let arena = try #require(filled.withLock { $0 })
        #expect(!arena.isSealed, "sealed by a preload on another thread")
    }
}
