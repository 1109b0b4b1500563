import Foundation
import ForkliftTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Pools under their own users (issue 10, point 3), run as root as CI does: the test makes
/// its users and group, starts two pools, and reads what each process is from /proc.
@Suite struct PrivilegesTests {
    /// Two pools, two users: each host and worker runs as its pool's user and groups (the
    /// supplementary group included), with its limits, priority, environment and directory;
    /// each socket belongs to its pool's user; a worker of one pool cannot touch the memory of
    /// the other pool's host, where that pool's scoreboard lives.
    @Test func twoPoolsRunAsTheirOwnUsers() throws {
        try requireRoot()
        let shared = try TestAccounts.group("forklift-tg")
        let a = try TestAccounts.user("forklift-ta", groups: ["forklift-tg"])
        let b = try TestAccounts.user("forklift-tb")
        let server = try ForkliftServer(config: """
            [global]
            pid = "{dir}/forklift.pid"
            [pool.a]
            listen = "{dir}/a.sock"
            max_children = 2
            user = "forklift-ta"
            rlimit_files = 4096
            rlimit_core = "unlimited"
            process_priority = 5
            chdir = "{dir}/plugins"
            env = { GREETING = "hi", FROM_MASTER = "$PATH" }
            access_log = "{dir}/a-access.log"
            [pool.a.plugin.b]
            path = "{dir}/plugins/libBehaviors.so"
            route = "/b"
            [pool.b]
            listen = "{dir}/b.sock"
            max_children = 1
            user = "forklift-tb"
            [pool.b.plugin.b]
            path = "{dir}/plugins/libBehaviors.so"
            route = "/b"
            """, prepare: TestAccounts.copyBehaviors)
        defer { server.shutdown() }

        let family = ProcessTable.descendants(of: server.pid)
        let poolA = family.filter { $0.value.contains("pool=a ") }.map(\.key)
        let poolB = family.filter { $0.value.contains("pool=b ") }.map(\.key)
        #expect(poolA.count == 3 && poolB.count == 2, "a host and its workers each: \(family)")
        for pid in poolA {
            let status = try ProcFile.status(pid)
            #expect(status["Uid"] == Array(repeating: "\(a.uid)", count: 4), "pid \(pid): \(status["Uid"] ?? [])")
            #expect(status["Gid"] == Array(repeating: "\(a.gid)", count: 4), "pid \(pid): \(status["Gid"] ?? [])")
            #expect(Set(status["Groups"] ?? []) == ["\(a.gid)", "\(shared)"], "pid \(pid): \(status["Groups"] ?? [])")
            let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
            #expect(limits.contains(try Regex(#"Max open files\s+4096\s+4096"#)), "\(limits)")
            #expect(limits.contains(try Regex(#"Max core file size\s+unlimited\s+unlimited"#)), "\(limits)")
            #expect(try ProcFile.nice(pid) == 5)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") == server.directory + "/plugins")
        }
        for pid in poolB {
            let status = try ProcFile.status(pid)
            #expect(status["Uid"]?.first == "\(b.uid)" && status["Gid"]?.first == "\(b.gid)", "pid \(pid): \(status)")
            #expect(try ProcFile.nice(pid) == 0)
        }
        for (name, user) in [("a.sock", a), ("b.sock", b)] {
            var info = stat()
            #expect(lstat(server.directory + "/" + name, &info) == 0)
            #expect(info.st_uid == user.uid && info.st_gid == user.gid && info.st_mode & 0o7777 == 0o660,
                    "\(name): \(info.st_uid):\(info.st_gid) \(String(info.st_mode & 0o7777, radix: 8)): the pool's user and group, as PHP-FPM")
        }

        let socketA = FastCGIAddress.unix(server.directory + "/a.sock")
        // What plugins see: /proc/PID/environ shows the memory a forked process started with.
        // Less the variables the worker sets for libfcgi itself (LIBFCGI_*), after clear_env.
        let pluginsOwn = { (text: String) in text.split(separator: "\n").filter { !$0.hasPrefix("LIBFCGI_") }.map { $0 + "\n" }.joined() }
        let environmentA = pluginsOwn(try FastCGIClient.get(socketA, "/b/environment").bodyText)
        #expect(environmentA == "FROM_MASTER=\(ProcessInfo.processInfo.environment["PATH"] ?? "")\nGREETING=hi\n", "\(environmentA)")
        let environmentB = pluginsOwn(try FastCGIClient.get(.unix(server.directory + "/b.sock"), "/b/environment").bodyText)
        #expect(environmentB == "", "clear_env is PHP-FPM's default: \(environmentB)")
        // The access log, which the pool's workers open by path, was created for its user.
        var log = stat()
        #expect(stat(server.directory + "/a-access.log", &log) == 0 && log.st_uid == a.uid && log.st_gid == a.gid,
                "\(log.st_uid):\(log.st_gid)")
        #expect(ForkliftServer.eventually { ((try? String(contentsOfFile: server.directory + "/a-access.log", encoding: .utf8)) ?? "").contains("/b/environment") })
        let hostB = try #require(family.first { $0.value.hasPrefix("forklift: host pool=b") }?.key)
        let own = try FastCGIClient.get(socketA, "/b/write-memory-of", query: "self")
        #expect(own.bodyText == "opened\n", "the check itself works: \(own.bodyText)")
        let other = try FastCGIClient.get(socketA, "/b/write-memory-of", query: "\(hostB)")
        #expect(other.bodyText.hasPrefix("refused: "), "a worker of pool a wrote into pool b's host: \(other.bodyText)")
    }

    /// As root, a pool without a user, or with root's, is refused unless -R says so.
    @Test(arguments: ["", "user = \"root\"", "user = \"nobody\"\ngroup = \"root\""])
    func rootWorkersNeedTheFlag(lines: String) throws {
        try requireRoot()
        let config = poolConfig(listen: "{dir}/www.sock", pool: lines)
        let result = try withConfiguration(config) { directory in
            try Command.run(ForkliftServer.binary, ["run", "--conf", directory + "/conf.d"])
        }
        #expect(result.status == 1)
        #expect(result.output.contains(lines.contains("group") ? "pool.www.group" : "pool.www.user") && result.output.contains("--allow-to-run-as-root (-R)"),
                "\(result.output)")
    }

    /// `forklift check` applies run's rule, and `run --single-process` (no host to take on a
    /// pool's user) needs -R as root.
    @Test func checkAndSingleProcessRefuseRootWithoutTheFlag() throws {
        try requireRoot()
        try withConfiguration(pluginConfig(path: "{build}/libHello.so")) { directory in
            let check = try Command.run(ForkliftServer.binary, ["check", "--conf", directory + "/conf.d"])
            #expect(check.status == 1 && check.output.contains("pool.www.user") && check.output.contains("--allow-to-run-as-root"), "\(check.output)")
            let single = try Command.run(ForkliftServer.binary, ["run", "--single-process", "--conf", directory + "/conf.d"])
            #expect(single.status == 1 && single.output.contains("--single-process runs the plugins in this process, as root"), "\(single.output)")
        }
    }

    /// A plugin file that group or others may write is code anyone may change: refused, naming
    /// it, by `run` and by `check` alike.
    @Test(arguments: ["run", "check"])
    func aWorldWritablePluginFileIsRefused(subcommand: String) throws {
        let result = try withConfiguration(pluginConfig(path: "{dir}/plugins/libBehaviors.so"), prepare: { directory in
            try TestAccounts.copyBehaviors(to: directory)
            chmod(directory + "/plugins/libBehaviors.so", 0o666)
        }) { directory in
            try Command.run(ForkliftServer.binary, [subcommand, "--conf", directory + "/conf.d"] + ForkliftServer.rootArguments())
        }
        #expect(result.status != 0)
        #expect(result.output.contains("plugins/libBehaviors.so is writable by its group and others (mode 0666)"), "\(result.output)")
        #expect(result.output.contains("refusing to load it"), "\(result.output)")
    }

    /// A chroot: the host changes root before loading the plugin, whose path is inside it.
    @Test func aPoolInAChroot() throws {
        try requireRoot()
        _ = try TestAccounts.user("forklift-tc")
        let server = try ForkliftServer(config: """
            [global]
            pid = "{dir}/forklift.pid"
            [pool.jailed]
            listen = "{dir}/jailed.sock"
            max_children = 1
            user = "forklift-tc"
            chroot = "{dir}/jail"
            [pool.jailed.plugin.b]
            path = "/plugins/libBehaviors.so"
            route = "/b"
            """, prepare: { directory in try TestAccounts.copyBehaviors(to: directory + "/jail") })
        defer { server.shutdown() }
        let worker = try #require(ProcessTable.descendants(of: server.pid).first { $0.value.hasPrefix("forklift: worker") }?.key)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(worker)/root") == server.directory + "/jail")
        let response = try FastCGIClient.get(.unix(server.directory + "/jailed.sock"), "/b")
        #expect(response.status == 200 && response.bodyText.hasPrefix("behaviors "), "\(response.bodyText)")
    }

    func requireRoot() throws {
        try #require(geteuid() == 0, "runs as root (CI does): it switches users")
    }
}

/// Users and groups for these tests, made once (useradd) and kept: a test that runs again
/// finds them there.
enum TestAccounts {
    static func user(_ name: String, groups: [String] = []) throws -> (uid: uid_t, gid: gid_t) {
        if getpwnam(name) == nil {
            let made = try Command.run("/usr/sbin/useradd", ["--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin"]
                                           + (groups.isEmpty ? [] : ["--groups", groups.joined(separator: ",")]) + [name])
            // A test beside this one may have made it meanwhile.
            try #require(made.status == 0 || getpwnam(name) != nil, "useradd \(name): \(made.output)")
        }
        let entry = try #require(getpwnam(name))
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    static func group(_ name: String) throws -> gid_t {
        if getgrnam(name) == nil {
            let made = try Command.run("/usr/sbin/groupadd", ["--system", name])
            try #require(made.status == 0 || getgrnam(name) != nil, "groupadd \(name): \(made.output)")
        }
        return try #require(getgrnam(name)).pointee.gr_gid
    }

    /// The Behaviors fixture copied to DIR/plugins, where the pools' users can read it (the
    /// build directory may be in a checkout only root can enter).
    static func copyBehaviors(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory + "/plugins", withIntermediateDirectories: true)
        chmod(directory, 0o755)
        chmod(directory + "/plugins", 0o755)
        try FileManager.default.copyItem(atPath: ForkliftServer.buildDirectory + "/libForkliftTestBehaviors.so", toPath: directory + "/plugins/libBehaviors.so")
        chmod(directory + "/plugins/libBehaviors.so", 0o755)
    }
}

/// What /proc says of a process.
enum ProcFile {
    /// /proc/PID/status as "Key" -> its fields ("Uid" -> real, effective, saved, filesystem).
    static func status(_ pid: pid_t) throws -> [String: [String]] {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        var fields: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        }
        return fields
    }

    /// The nice value (field 19 of /proc/PID/stat).
    static func nice(_ pid: pid_t) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        return try #require(Int(fields[16]))
    }
}
