import ForkliftConfig
import Testing

/// `minimalPool` with its `max_children = 4` line replaced by `lines`.
func pool(_ lines: String) -> String {
    minimalPool.replacingOccurrences(of: "max_children = 4", with: lines)
}

@Suite struct PoolSizingTests {
    @Test func dynamicGetsPHPFPMsDefaultStartServers() throws {
        let config = try parse(pool("pm = \"dynamic\"\nmax_children = 8\nmin_spare_servers = 2\nmax_spare_servers = 4"))
        let www = try #require(config.pools.first)
        #expect(www.processManager == .dynamic)
        #expect(www.maxChildren == 8)
        #expect(www.minSpareServers == 2)
        #expect(www.maxSpareServers == 4)
        #expect(www.startServers == 3, "min + (max - min) / 2, as PHP-FPM")
        #expect(www.maxSpawnRate == 32)
    }

    @Test func everySizingKeyIsRead() throws {
        let dynamic = try #require(try parse(pool("pm = \"dynamic\"\nmax_children = 9\nstart_servers = 5\nmin_spare_servers = 1\nmax_spare_servers = 6\nmax_spawn_rate = 4")).pools.first)
        #expect(dynamic.startServers == 5)
        #expect(dynamic.maxSpawnRate == 4)
        let ondemand = try #require(try parse(pool("pm = \"ondemand\"\nmax_children = 3\nprocess_idle_timeout = \"2500ms\"")).pools.first)
        #expect(ondemand.processManager == .ondemand)
        #expect(ondemand.processIdleTimeout == 2.5)
        let byDefault = try #require(try parse(pool("pm = \"ondemand\"\nmax_children = 3")).pools.first)
        #expect(byDefault.processIdleTimeout == 10, "PHP-FPM's default")
        let fixed = try #require(try parse(minimalPool).pools.first)
        #expect(fixed.startServers == 4, "static: max_children workers")
        #expect(fixed.standbyWorkers == 0, "no standby unless asked for")
        let standby = try #require(try parse(pool("max_children = 4\nstandby_workers = 2")).pools.first)
        #expect(standby.standbyWorkers == 2)
        #expect(try parse(pool("pm = \"ondemand\"\nmax_children = 3\nstandby_workers = 1")).pools.first?.standbyWorkers == 1, "every pm")
    }

    @Test(arguments: [
        ("pm = \"dynamic\"\nmax_children = 8\nmax_spare_servers = 4", "pool.www.min_spare_servers", "is required with pm = \"dynamic\""),
        ("pm = \"dynamic\"\nmax_children = 8\nmin_spare_servers = 2", "pool.www.max_spare_servers", "is required with pm = \"dynamic\""),
        ("pm = \"dynamic\"\nmax_children = 3\nmin_spare_servers = 2\nmax_spare_servers = 4", "pool.www.max_spare_servers", "cannot be greater than max_children (3)"),
        ("pm = \"dynamic\"\nmax_children = 8\nmin_spare_servers = 5\nmax_spare_servers = 4", "pool.www.max_spare_servers", "must not be less than min_spare_servers (5)"),
        ("pm = \"dynamic\"\nmax_children = 8\nmin_spare_servers = 2\nmax_spare_servers = 4\nstart_servers = 7", "pool.www.start_servers", "start_servers (7) must not be less than min_spare_servers (2) and not greater than max_spare_servers (4)"),
        ("pm = \"dynamic\"\nmax_children = 8\nmin_spare_servers = 0\nmax_spare_servers = 4", "pool.www.min_spare_servers", "expected an integer between 1 and 10000, got 0"),
        ("pm = \"dynamic\"\nmax_children = 8\nmin_spare_servers = 1\nmax_spare_servers = 4\nmax_spawn_rate = 0", "pool.www.max_spawn_rate", "expected an integer between 1 and 10000, got 0"),
        ("max_children = 4\nmin_spare_servers = 1", "pool.www.min_spare_servers", "applies to pm = \"dynamic\" only, and this pool has pm = \"static\""),
        ("pm = \"ondemand\"\nmax_children = 4\nstart_servers = 1", "pool.www.start_servers", "applies to pm = \"dynamic\" only, and this pool has pm = \"ondemand\""),
        ("max_children = 4\nprocess_idle_timeout = 5", "pool.www.process_idle_timeout", "applies to pm = \"ondemand\" only"),
        ("pm = \"ondemand\"\nmax_children = 4\nprocess_idle_timeout = 0", "pool.www.process_idle_timeout", "expected a duration above 0"),
        ("max_children = 2\nstandby_workers = 3", "pool.www.standby_workers", "standby_workers (3) cannot be greater than max_children (2)"),
        ("max_children = 2\nstandby_workers = -1", "pool.www.standby_workers", "expected an integer between 0 and 10000, got -1"),
    ])
    func impossibleCombinationsNameTheKeys(lines: String, key: String, message: String) throws {
        expectRefused(pool(lines), key: key, saying: message)
    }

    @Test func statusAndPing() throws {
        let www = try #require(try parse(pool("max_children = 4\nstatus_path = \"/status\"\nping_path = \"/ping\"\nping_response = \"ok\"\nstatus_listen = \"status.sock\"")).pools.first)
        #expect(www.statusPath == "/status")
        #expect(www.pingPath == "/ping")
        #expect(www.pingResponse == "ok")
        #expect(www.statusListen == .unix(path: "/etc/forklift/status.sock"))
        #expect(try parse(pool("max_children = 4\nping_path = \"/ping\"")).pools.first?.pingResponse == "pong")
        let none = try #require(try parse(minimalPool).pools.first)
        #expect(none.statusPath == nil && none.pingPath == nil && none.statusListen == nil)
    }

    @Test(arguments: [
        ("status_path = \"status\"", "pool.www.status_path", "expected a path starting with \"/\""),
        ("status_path = \"/s\"\nping_path = \"/s\"", "pool.www.ping_path", "is the same path as status_path"),
        ("ping_response = \"ok\"", "pool.www.ping_response", "needs ping_path"),
        ("status_listen = \"127.0.0.1:9001\"", "pool.www.status_listen", "needs status_path or ping_path"),
        ("status_path = \"/s\"\nstatus_listen = \"127.0.0.1:9000\"", "pool.www.status_listen", "127.0.0.1:9000 is already the listen address of pool \"www\""),
    ])
    func badStatusSettings(lines: String, key: String, message: String) throws {
        expectRefused(pool("max_children = 4\n" + lines), key: key, saying: message)
    }

    @Test func aListenAddressMayNotBeTheControlSocketOrThePidFile() throws {
        let control = try #require(parseError("[global]\npid = \"x.pid\"\n" + minimalPool.replacingOccurrences(of: "\"127.0.0.1:9000\"", with: "\"x.sock\"")))
        #expect(control.key == "pool.www.listen")
        #expect(control.message == "/etc/forklift/x.sock is already the control socket (global.pid's path with .sock, as control_socket is not set); listen elsewhere, or set global.control_socket")
        let pid = try #require(parseError("[global]\npid = \"www.sock\"\n" + minimalPool.replacingOccurrences(of: "\"127.0.0.1:9000\"", with: "\"www.sock\"")))
        #expect(pid.message == "/etc/forklift/www.sock is the pid file (global.pid); a socket needs a path of its own")
    }

    @Test func emergencyRestartNeedsBothKeys() throws {
        let config = try parse("[global]\nemergency_restart_threshold = 10\nemergency_restart_interval = \"1m\"\n" + minimalPool)
        #expect(config.global.emergencyRestartThreshold == 10)
        #expect(config.global.emergencyRestartInterval == 60)
        let half = try #require(parseError("[global]\nemergency_restart_threshold = 10\n" + minimalPool))
        #expect(half.key == "global.emergency_restart_interval")
        #expect(half.message.contains("set both above 0, or neither"))
    }

    @Test func slowAndBusyThresholds() throws {
        let www = try #require(try parse(pool("max_children = 4\nrequest_slowlog_timeout = \"2s\"\nall_busy_warning = 0")).pools.first)
        #expect(www.requestSlowlogTimeout == 2)
        #expect(www.allBusyWarning == 0)
        #expect(try parse(minimalPool).pools.first?.allBusyWarning == 10)
    }

    /// The bug this guards: an infinite duration overflowed the first deadline computed from
    /// it and killed the master.
    @Test(arguments: [
        ("die_timeout = inf", "global.die_timeout", "at most a year"),
        ("die_timeout = nan", "global.die_timeout", "got nan"),
        ("die_timeout = 1e300", "global.die_timeout", "at most a year"),
        ("reload_timeout = \"1e400\"", "global.reload_timeout", "expected a duration"),
        ("background_loading = 40000000", "global.background_loading", "at most a year"),
        ("die_timeout = \"9999999999999999999999h\"", "global.die_timeout", "at most a year"),
    ])
    func infiniteAndAbsurdDurationsAreErrors(line: String, key: String, message: String) throws {
        expectRefused("[global]\n\(line)\n" + minimalPool, key: key, saying: message)
    }

    /// TOML itself refuses a float literal out of range; the error names the line.
    @Test func anOutOfRangeFloatIsASyntaxError() throws {
        let error = try #require(parseError("[global]\ndie_timeout = 1e400\n" + minimalPool))
        #expect(error.message.hasPrefix("line 2"))
    }

    @Test(arguments: ["\"1e400k\"", "\"inf\"", "\"nanM\"", "1.5", "\"99999999999G\""])
    func absurdSizesAreErrors(value: String) throws {
        let error = try #require(parseError(pool("max_children = 4\nmax_private_memory = \(value)")))
        #expect(error.key == "pool.www.max_private_memory")
    }
}
