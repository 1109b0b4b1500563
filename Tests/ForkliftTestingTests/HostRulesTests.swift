import ForkliftTesting
import Testing

/// ForkliftTesting keeps the worker's rules, so a test that passes here passes in the
/// server: checked on the misbehaving fixture plugin, through its shared object.
@Suite struct HostRulesTests {
    let behaviors: PluginUnderTest

    init() throws {
        behaviors = try PluginUnderTest(library: PluginUnderTest.built("ForkliftTestBehaviors"), route: "/behaviors")
    }

    @Test func aThrownErrorIsA500WithItsMessage() {
        let response = behaviors.get("/behaviors/throw")
        #expect(response.status == 500)
        #expect(response.failure == "thrown on purpose by /throw")
        #expect(!response.aborted)
    }

    @Test func aFailureAfterPartOfTheBodyIsAnAbort() {
        let response = behaviors.get("/behaviors/throw-late")
        #expect(response.status == 200 && response.body.count == 10_000)
        #expect(response.aborted, "the worker would abort the connection")
    }

    @Test func headerInjectionIsRefused() {
        #expect(behaviors.get("/behaviors/inject").bodyText == "refused\n")
    }

    @Test func finishingEarlyIsRecordedAndLaterWritesFail() {
        let response = behaviors.post("/behaviors/finish-then-sleep?ms=1", body: "unread")
        #expect(response.finishedEarly && response.bodyAtFinish == response.body.count)
        #expect(response.bodyText.hasPrefix("finished before the work"))
        #expect(behaviors.log.last?.message == "work after finish done: slept 1 ms, a write after finish was refused, body after finish 0 bytes")
    }

    @Test func paramsAreTheFrontEndsAndExplicitOnesReplaceThem() {
        let request = PluginRequest("http://example.org:8080/behaviors/x?q=1", params: [("REMOTE_ADDR", "10.0.0.1")])
        let value = { (name: String) in request.params.first { $0.0 == name }?.1 }
        #expect(value("REMOTE_ADDR") == "10.0.0.1" && request.params.filter { $0.0 == "REMOTE_ADDR" }.count == 1)
        #expect(value("DOCUMENT_URI") == "/behaviors/x" && value("QUERY_STRING") == "q=1")
        #expect(value("SERVER_NAME") == "example.org" && value("SERVER_PORT") == "8080")
    }
}
