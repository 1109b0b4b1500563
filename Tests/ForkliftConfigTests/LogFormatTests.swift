import ForkliftConfig
import Testing

/// log_format and access_log_format: text by default, json on request, anything else an error.
@Suite struct LogFormatTests {
    let pool = """
        [pool.www]
        listen = "127.0.0.1:9000"
        max_children = 4
        access_log = "log/access.log"
        %@
        [pool.www.plugin.hello]
        path = "plugins/libHello.so"
        route = "/hello"
        """

    func withPool(_ keys: String) -> String { pool.replacingOccurrences(of: "%@", with: keys) }

    @Test func textByDefaultJsonWhenAsked() throws {
        let plain = try parse(withPool(""))
        #expect(plain.global.logFormat == .text && plain.pools[0].accessLogFormat == .text)
        let json = try parse("[global]\nlog_format = \"json\"\n" + withPool("access_log_format = \"json\""))
        #expect(json.global.logFormat == .json && json.pools[0].accessLogFormat == .json)
    }

    @Test func anUnknownFormatNamesTheKeyAndTheChoices() {
        #expect(parseError("[global]\nlog_format = \"xml\"\n" + withPool(""))?.description
            .contains("global.log_format: expected one of \"text\", \"json\", got \"xml\"") == true)
        #expect(parseError(withPool("access_log_format = \"csv\""))?.description
            .contains("pool.www.access_log_format: expected one of \"text\", \"json\", got \"csv\"") == true)
    }

    @Test func jsonAccessLinesTakeNoAccessFormatAndNeedAnAccessLog() {
        #expect(parseError(withPool("access_log_format = \"json\"\naccess_format = \"%s\""))?.description
            .contains("json writes every field itself: remove access_format") == true)
        #expect(parseError(withPool("access_log_format = \"json\"").replacingOccurrences(of: "access_log = \"log/access.log\"\n", with: ""))?.description
            .contains("access_log_format: needs access_log") == true)
    }
}
