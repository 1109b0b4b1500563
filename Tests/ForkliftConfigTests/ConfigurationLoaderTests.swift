import ForkliftConfig
import Testing

/// Parses one file named "/etc/forklift/conf.d/10-www.toml" (configuration directory
/// /etc/forklift/conf.d, so the default prefix is /etc/forklift).
func parse(_ text: String, _ more: [(String, String)] = []) throws -> Configuration {
    try ConfigurationLoader.parse(files: [("/etc/forklift/conf.d/10-www.toml", text)] + more,
                                  configurationDirectory: "/etc/forklift/conf.d")
}

/// The error `text` produces; fails the test if it parses.
func parseError(_ text: String, _ more: [(String, String)] = []) -> ConfigurationError? {
    do {
        _ = try parse(text, more)
        Issue.record("expected a configuration error")
        return nil
    } catch let error as ConfigurationError {
        return error
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// Fails unless `text` is refused with an error naming `key` whose message contains `message`.
func expectRefused(_ text: String, key: String, saying message: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = parseError(text) else { return }
    #expect(error.key == key, "\(error)", sourceLocation: sourceLocation)
    #expect(error.message.contains(message), "\(error)", sourceLocation: sourceLocation)
}

let minimalPool = """
    [pool.www]
    listen = "127.0.0.1:9000"
    max_children = 4
    [pool.www.plugin.hello]
    path = "plugins/libHello.so"
    route = "/hello"
    """

@Suite struct ConfigurationLoaderTests {
    @Test func minimalPoolGetsTheDocumentedDefaults() throws {
        let config = try parse(minimalPool)
        #expect(config.global.prefix == "/etc/forklift")
        #expect(config.global.pidFile == "/etc/forklift/forklift.pid")
        #expect(config.global.errorLog == nil)
        #expect(config.global.logLevel == .notice)
        #expect(config.global.dieTimeout == 60)
        #expect(config.global.reloadTimeout == 60)
        #expect(config.global.backgroundLoading == 30)
        let pool = try #require(config.pools.first)
        #expect(pool.name == "www")
        #expect(pool.listen == .tcp(host: "127.0.0.1", port: 9000))
        #expect(pool.listenBacklog == 511)
        #expect(pool.processManager == .static)
        #expect(pool.maxChildren == 4)
        #expect(pool.maxRequests == 0)
        #expect(pool.maxRequestsJitter == 0)
        #expect(pool.plugins == [PluginSettings(name: "hello", path: "/etc/forklift/plugins/libHello.so", route: "/hello")])
    }

    @Test func everyKeyIsRead() throws {
        let config = try parse("""
            [global]
            prefix = "/srv/app"
            pid = "run/forklift.pid"
            error_log = "/var/log/forklift.log"
            log_level = "debug"
            die_timeout = "1m30s"
            reload_timeout = "2m"
            background_loading = "0"
            [pool.api]
            listen = "run/api.sock"
            listen_backlog = 128
            pm = "static"
            max_children = 8
            max_requests = 500
            max_requests_jitter = 50
            [pool.api.plugin.model]
            path = "/opt/plugins/libModel.so"
            route = "/predict"
            [pool.api.plugin.model.settings]
            file = "model.bin"
            threads = 2
            ratio = 0.5
            warm = true
            tags = ["a", "b"]
            cache = { size = 10, dir = "/tmp" }
            """)
        #expect(config.global.prefix == "/srv/app")
        #expect(config.global.pidFile == "/srv/app/run/forklift.pid")
        #expect(config.global.errorLog == "/var/log/forklift.log")
        #expect(config.global.logLevel == .debug)
        #expect(config.global.dieTimeout == 90)
        #expect(config.global.reloadTimeout == 120)
        #expect(config.global.backgroundLoading == 0)
        let pool = try #require(config.pools.first)
        #expect(pool.listen == .unix(path: "/srv/app/run/api.sock"))
        #expect(pool.listenBacklog == 128)
        #expect(pool.maxChildren == 8)
        #expect(pool.maxRequests == 500)
        #expect(pool.maxRequestsJitter == 50)
        let plugin = try #require(pool.plugins.first)
        #expect(plugin.path == "/opt/plugins/libModel.so")
        #expect(plugin.settings.map(\.key) == ["cache.dir", "cache.size", "file", "ratio", "tags", "threads", "warm"])
        #expect(plugin.settings.first { $0.key == "file" }?.value == "model.bin")
        #expect(plugin.settings.first { $0.key == "tags" }?.value == "[\"a\",\"b\"]")
        #expect(plugin.settings.first { $0.key == "warm" }?.value == "true")
        #expect(plugin.settingsJSON == #"{"cache":{"dir":"/tmp","size":10},"file":"model.bin","ratio":0.5,"tags":["a","b"],"threads":2,"warm":true}"#)
    }

    @Test func laterFilesOverrideGlobalKeys() throws {
        let config = try parse("[global]\nlog_level = \"debug\"\ndie_timeout = 5\n" + minimalPool,
                               [("/etc/forklift/conf.d/99-local.toml", "[global]\ndie_timeout = \"500ms\"\n")])
        #expect(config.global.logLevel == .debug)
        #expect(config.global.dieTimeout == 0.5)
        #expect(config.files == ["/etc/forklift/conf.d/10-www.toml", "/etc/forklift/conf.d/99-local.toml"])
    }

    @Test func unknownKeysNameTheFileTheKeyAndTheAllowedKeys() throws {
        let global = try #require(parseError("[global]\npidfile = \"x\"\n" + minimalPool))
        #expect(global.file == "/etc/forklift/conf.d/10-www.toml")
        #expect(global.key == "global.pidfile")
        #expect(global.message.contains("unknown key"))
        #expect(global.message.contains("pid, error_log"))

        let pool = try #require(parseError(minimalPool + "\n[pool.www.extra]\nx = 1\n"))
        #expect(pool.key == "pool.www.extra")

        let plugin = try #require(parseError(minimalPool + "\nroot = \"/\"\n"))
        #expect(plugin.key == "pool.www.plugin.hello.root")
        #expect(plugin.description == "/etc/forklift/conf.d/10-www.toml: pool.www.plugin.hello.root: unknown key; expected one of: path, route, settings, request_terminate_timeout")

        let top = try #require(parseError("[server]\nport = 1\n" + minimalPool))
        #expect(top.key == "server")
    }

    @Test func wrongTypesSayWhatWasExpected() throws {
        let children = try #require(parseError(minimalPool.replacingOccurrences(of: "max_children = 4", with: "max_children = \"four\"")))
        #expect(children.key == "pool.www.max_children")
        #expect(children.message == "expected an integer, got the string \"four\"")

        let timeout = try #require(parseError("[global]\ndie_timeout = true\n" + minimalPool))
        #expect(timeout.key == "global.die_timeout")
        #expect(timeout.message.contains("expected a duration"))

        let background = try #require(parseError("[global]\nbackground_loading = -1\n" + minimalPool))
        #expect(background.key == "global.background_loading")
        #expect(background.message.contains("got a negative number"))

        let settings = try #require(parseError(minimalPool + "\nsettings = 3\n"))
        #expect(settings.key == "pool.www.plugin.hello.settings")
        #expect(settings.message.contains("expected a table"))
    }

    @Test(arguments: [
        ("max_children = 4", "max_children = 0", "pool.www.max_children", "expected an integer between 1 and 10000, got 0"),
        ("max_children = 4", "max_children = 4\nmax_requests = -1", "pool.www.max_requests", "expected an integer between 0 and 1000000000, got -1"),
        ("max_children = 4", "max_children = 4\nlisten_backlog = 0", "pool.www.listen_backlog", "expected an integer between 1 and 65535, got 0"),
        ("max_children = 4", "max_children = 4\npm = \"adaptive\"", "pool.www.pm", "expected one of \"static\", \"dynamic\", \"ondemand\", got \"adaptive\""),
        ("listen = \"127.0.0.1:9000\"", "listen = \"127.0.0.1:99999\"", "pool.www.listen", "expected a unix socket path or host:port with a port from 0 to 65535, got \"127.0.0.1:99999\""),
        ("route = \"/hello\"", "route = \"hello\"", "pool.www.plugin.hello.route", "expected a path prefix starting with \"/\", got \"hello\""),
        ("path = \"plugins/libHello.so\"", "path = \"\"", "pool.www.plugin.hello.path", "must not be empty"),
    ])
    func impossibleValuesAreRejected(original: String, replacement: String, key: String, message: String) throws {
        let error = try #require(parseError(minimalPool.replacingOccurrences(of: original, with: replacement)))
        #expect(error.key == key)
        #expect(error.message == message)
    }

    @Test func missingRequiredKeys() throws {
        let listen = try #require(parseError(minimalPool.replacingOccurrences(of: "listen = \"127.0.0.1:9000\"", with: "")))
        #expect(listen.key == "pool.www.listen")
        #expect(listen.message.contains("is required"))

        let children = try #require(parseError(minimalPool.replacingOccurrences(of: "max_children = 4", with: "")))
        #expect(children.key == "pool.www.max_children")

        let plugins = try #require(parseError("[pool.www]\nlisten = \"9000\"\nmax_children = 1\n"))
        #expect(plugins.key == "pool.www.plugin")

        let pools = try #require(parseError("[global]\nlog_level = \"info\"\n"))
        #expect(pools.message.contains("no [pool.NAME] table"))
    }

    @Test func syntaxErrorsGiveTheLine() throws {
        let error = try #require(parseError("[global]\nlog_level = \n"))
        #expect(error.file == "/etc/forklift/conf.d/10-www.toml")
        #expect(error.key == nil)
        #expect(error.message.hasPrefix("line 2"))
    }

    @Test func conflictsAcrossPoolsAndFiles() throws {
        let again = try #require(parseError(minimalPool, [("/etc/forklift/conf.d/20-again.toml", minimalPool)]))
        #expect(again.file == "/etc/forklift/conf.d/20-again.toml")
        #expect(again.message.contains("already defined in /etc/forklift/conf.d/10-www.toml"))

        let sameListen = try #require(parseError(minimalPool, [("/etc/forklift/conf.d/20-b.toml", minimalPool.replacingOccurrences(of: "pool.www", with: "pool.b"))]))
        #expect(sameListen.key == "pool.b.listen")
        #expect(sameListen.message.contains("already the listen address of pool \"www\""))

        let sameRoute = try #require(parseError(minimalPool + "\n[pool.www.plugin.other]\npath = \"x.so\"\nroute = \"/hello\"\n"))
        #expect(sameRoute.message.contains("already served by plugin"))
    }

    @Test(arguments: [
        ("/run/www.sock", ListenAddress.unix(path: "/run/www.sock")),
        ("run/www.sock", .unix(path: "/etc/forklift/run/www.sock")),
        ("unix:/tmp/a", .unix(path: "/tmp/a")),
        ("www.sock", .unix(path: "/etc/forklift/www.sock")),
        ("127.0.0.1:9000", .tcp(host: "127.0.0.1", port: 9000)),
        ("[::1]:9001", .tcp(host: "::1", port: 9001)),
        ("localhost:0", .tcp(host: "localhost", port: 0)),
        ("9002", .tcp(host: "*", port: 9002)),
    ])
    func listenAddresses(text: String, expected: ListenAddress) throws {
        let config = try parse(minimalPool.replacingOccurrences(of: "127.0.0.1:9000", with: text))
        #expect(config.pools.first?.listen == expected)
    }

    @Test(arguments: [("30", 30.0), ("0.5", 0.5), ("500ms", 0.5), ("10s", 10), ("2m", 120), ("1h", 3600), ("1m30s", 90), ("1d", 86400)])
    func durations(text: String, seconds: Double) {
        #expect(DurationParser.seconds(fromString: text) == seconds)
    }

    @Test(arguments: [("1048576", 1 << 20), ("512k", 512 << 10), ("64M", 64 << 20), ("1G", 1 << 30), ("1.5GiB", 3 << 29), ("8mb", 8 << 20)])
    func sizes(text: String, bytes: Int) {
        #expect(SizeParser.bytes(fromString: text) == bytes)
    }

    @Test func memoryKeys() throws {
        let config = try parse(minimalPool.replacingOccurrences(of: "max_children = 4", with: "max_children = 4\nmax_private_memory = \"64M\"\nmemory_log_interval = \"30s\""))
        #expect(config.pools.first?.maxPrivateMemory == 64 << 20)
        #expect(config.pools.first?.memoryLogInterval == 30)
        let bad = try #require(parseError(minimalPool.replacingOccurrences(of: "max_children = 4", with: "max_children = 4\nmax_private_memory = \"lots\"")))
        #expect(bad.key == "pool.www.max_private_memory")
        #expect(bad.message.contains("expected a size"))
    }

    @Test(arguments: ["", "ten", "10x", "-5", "5 ms s", "m"])
    func badDurations(text: String) {
        #expect(DurationParser.seconds(fromString: text) == nil)
    }
}
