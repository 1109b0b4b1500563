@testable import ForkliftConfig
import Testing

/// Broken configurations and what their error must say: the file, the key, what was found and
/// expected, and the fix where there is an obvious one. (Through `forklift check`:
/// ForkliftIntegrationTests/ErrorMessageTests.swift.)
@Suite struct ConfigurationErrorMessageTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let name: String
        /// The files, in order: (name under /etc/forklift/conf.d, text).
        let files: [(String, String)]
        let key: String?
        let contains: [String]
        var file = "/etc/forklift/conf.d/10-www.toml"
        var running: RunningMaster?
        var testDescription: String { name }
    }

    static let pool = minimalPool
    static let global = "[global]\npid = \"run/x.pid\"\n"

    static func one(_ text: String) -> [(String, String)] { [("10-www.toml", text)] }

    static let rows: [Row] = [
        // MARK: unknown keys: first, with the closest known key or the table they belong in
        Row(name: "a misspelt required key", files: one(pool.replacingOccurrences(of: "max_children", with: "max_chidren")),
            key: "pool.www.max_chidren", contains: ["unknown key; did you mean max_children?"]),
        Row(name: "a misspelt key before a bad value in the same table",
            files: one(pool.replacingOccurrences(of: "max_children = 4", with: "listen_backlog = 0\nmax_chidren = 4")),
            key: "pool.www.max_chidren", contains: ["did you mean max_children?"]),
        Row(name: "a misspelt key in a later file before a bad value in an earlier one",
            files: [("00-global.toml", "[global]\ndie_timeout = \"forever\"\n"), ("10-www.toml", pool + "\n[global]\nlog_levle = \"info\"\n")],
            key: "global.log_levle", contains: ["did you mean log_level?"]),
        Row(name: "two letters swapped", files: one(pool.replacingOccurrences(of: "listen =", with: "lsiten =")),
            key: "pool.www.lsiten", contains: ["did you mean listen?"]),
        Row(name: "case and dashes", files: one(pool.replacingOccurrences(of: "max_children", with: "Max-Children")),
            key: "pool.www.Max-Children", contains: ["did you mean max_children?"]),
        Row(name: "a pool key below a plugin's header", files: one(pool + "\nmax_requests = 500\n"),
            key: "pool.www.plugin.hello.max_requests",
            contains: ["max_requests is a key of [pool.www]", "move it above [pool.www.plugin.hello]"]),
        Row(name: "a misspelt pool key below a plugin's header", files: one(pool + "\nmax_childs = 5\n"),
            key: "pool.www.plugin.hello.max_childs",
            contains: ["did you mean max_children? That is a key of [pool.www]", "move it above [pool.www.plugin.hello]"]),
        Row(name: "PHP-FPM's pm.max_children", files: one(pool.replacingOccurrences(of: "max_children", with: "pm.max_children")),
            key: "pool.www.pm.max_children", contains: ["unknown key; PHP-FPM's pm.max_children is max_children here"]),
        Row(name: "PHP-FPM's listen.backlog", files: one(pool.replacingOccurrences(of: "listen = \"127.0.0.1:9000\"", with: "listen.backlog = 64")),
            key: "pool.www.listen.backlog", contains: ["PHP-FPM's listen.backlog is listen_backlog here"]),
        Row(name: "a global key before any table", files: one("pid = \"x.pid\"\n" + pool),
            key: "pid", contains: ["unknown key; pid is a key of [global]: move it there"]),
        Row(name: "a global key in a pool", files: one(pool.replacingOccurrences(of: "max_children = 4", with: "max_children = 4\nerror_log = \"x.log\"")),
            key: "pool.www.error_log", contains: ["error_log is a key of [global]"]),
        Row(name: "a misspelt table", files: one("[globl]\npid = \"x.pid\"\n" + pool),
            key: "globl", contains: ["unknown key; did you mean [global]?"]),
        Row(name: "plugins for plugin", files: one(pool.replacingOccurrences(of: "pool.www.plugin.hello", with: "pool.www.plugins.hello")),
            key: "pool.www.plugins", contains: ["did you mean plugin?"]),

        // MARK: sockets and files that collide
        Row(name: "listen on the control socket the pid file implies",
            files: one(global + pool.replacingOccurrences(of: "127.0.0.1:9000", with: "run/x.sock")),
            key: "pool.www.listen",
            contains: ["/etc/forklift/run/x.sock is already the control socket", "global.pid's path with .sock", "set global.control_socket"]),
        Row(name: "listen on the control socket set", files: one("[global]\ncontrol_socket = \"/run/c.sock\"\n" + pool.replacingOccurrences(of: "127.0.0.1:9000", with: "/run/c.sock")),
            key: "pool.www.listen", contains: ["/run/c.sock is already the control socket (global.control_socket)", "listen elsewhere"]),
        Row(name: "listen on the pid file", files: one(global + pool.replacingOccurrences(of: "127.0.0.1:9000", with: "unix:run/x.pid")),
            key: "pool.www.listen", contains: ["/etc/forklift/run/x.pid is the pid file (global.pid)", "a socket needs a path of its own"]),
        Row(name: "listen on the error log", files: one("[global]\nerror_log = \"log/www.sock\"\n" + pool.replacingOccurrences(of: "127.0.0.1:9000", with: "log/www.sock")),
            key: "pool.www.listen", contains: ["/etc/forklift/log/www.sock is the error log (global.error_log)"]),
        Row(name: "listen on another pool's slowlog",
            files: one(pool.replacingOccurrences(of: "max_children = 4", with: "max_children = 4\nslowlog = \"log/b.sock\"")
                       + "\n" + pool.replacingOccurrences(of: "pool.www", with: "pool.b").replacingOccurrences(of: "127.0.0.1:9000", with: "log/b.sock")),
            key: "pool.b.listen", contains: ["is the slowlog of pool \"www\" (pool.www.slowlog)"]),
        Row(name: "a status_listen on the pool's own listen",
            files: one(pool.replacingOccurrences(of: "max_children = 4", with: "max_children = 4\nstatus_path = \"/status\"\nstatus_listen = \"127.0.0.1:9000\"")),
            key: "pool.www.status_listen",
            contains: ["127.0.0.1:9000 is already the listen address of pool \"www\" (pool.www.listen in /etc/forklift/conf.d/10-www.toml)", "give each socket an address of its own"]),
        Row(name: "the control socket on the pid file",
            files: [("00-global.toml", "[global]\npid = \"run/x.pid\"\ncontrol_socket = \"run/x.pid\"\n"), ("10-www.toml", pool)],
            key: "global.control_socket", contains: ["the control socket /etc/forklift/run/x.pid is the pid file (global.pid)"],
            file: "/etc/forklift/conf.d/00-global.toml"),
        Row(name: "the pid file on a log", files: one("[global]\npid = \"log/x\"\nerror_log = \"log/x\"\n" + pool),
            key: "global.error_log", contains: ["/etc/forklift/log/x is the pid file (global.pid); give the log a file of its own"]),
        Row(name: "a port on every address and the same port on one",
            files: one(pool + "\n" + pool.replacingOccurrences(of: "pool.www", with: "pool.b").replacingOccurrences(of: "127.0.0.1:9000", with: "9000")),
            key: "pool.www.listen",
            contains: ["127.0.0.1:9000 overlaps *:9000, the listen address of pool \"b\"", "*:9000 takes port 9000 on every address; use another port"]),
        Row(name: "IPv6 any and an IPv4 address",
            files: one(pool + "\n" + pool.replacingOccurrences(of: "pool.www", with: "pool.b").replacingOccurrences(of: "127.0.0.1:9000", with: "[::]:9000")),
            key: "pool.www.listen", contains: ["127.0.0.1:9000 overlaps [::]:9000"]),
        Row(name: "a listen that is neither path nor port", files: one(pool.replacingOccurrences(of: "127.0.0.1:9000", with: "www")),
            key: "pool.www.listen", contains: ["got \"www\"", "a socket path has a \"/\" or ends in .sock; for any other name write \"unix:www\""]),
        Row(name: "a reload listening on the running master's control socket",
            files: one("[global]\npid = \"run/new.pid\"\n" + pool.replacingOccurrences(of: "127.0.0.1:9000", with: "run/old.sock")),
            key: "pool.www.listen",
            contains: ["/etc/forklift/run/old.sock is already the running master's control socket (it keeps it until it restarts)", "listen elsewhere until forklift is restarted"],
            running: RunningMaster(controlSocket: "/etc/forklift/run/old.sock", pidFile: "/etc/forklift/run/old.pid")),
        Row(name: "a reload listening on the running master's pid file",
            files: one("[global]\npid = \"run/new.pid\"\n" + pool.replacingOccurrences(of: "127.0.0.1:9000", with: "unix:run/old.pid")),
            key: "pool.www.listen", contains: ["/etc/forklift/run/old.pid is the running master's pid file"],
            running: RunningMaster(controlSocket: "/etc/forklift/run/old.sock", pidFile: "/etc/forklift/run/old.pid")),
    ]

    @Test(arguments: rows)
    func theErrorSaysWhatToDo(row: Row) throws {
        do {
            _ = try ConfigurationLoader.parse(files: row.files.map { ("/etc/forklift/conf.d/" + $0.0, $0.1) },
                                              configurationDirectory: "/etc/forklift/conf.d", running: row.running)
            Issue.record("accepted")
        } catch {
            #expect(error.file == row.file, "\(error)")
            #expect(error.key == row.key, "\(error)")
            for text in row.contains {
                #expect(error.message.contains(text), "\(error)\nmissing: \(text)")
            }
        }
    }

    @Test func aSameReloadIsStillFine() throws {
        // The running master's own control socket and pid file, unchanged, are no collision.
        let config = try ConfigurationLoader.parse(files: [("/etc/forklift/conf.d/10-www.toml", Self.global + Self.pool)],
                                                   configurationDirectory: "/etc/forklift/conf.d",
                                                   running: RunningMaster(controlSocket: "/etc/forklift/run/x.sock", pidFile: "/etc/forklift/run/x.pid"))
        #expect(config.global.controlSocket == "/etc/forklift/run/x.sock")
    }

    @Test(arguments: [
        ("max_chidren", "max_children"), ("max_chlidren", "max_children"), ("MAX_CHILDREN", "max_children"),
        ("listen-backlog", "listen_backlog"), ("pn", "pm"), ("slowlogg", "slowlog"),
    ])
    func nearKeys(typed: String, meant: String) {
        #expect(UnknownKeys.closest(to: typed, in: ConfigurationLoader.poolKeys) == meant)
    }

    @Test(arguments: ["root", "workers", "x", "timeout", "pidfile"])
    func farKeysSuggestNothing(typed: String) {
        #expect(UnknownKeys.closest(to: typed, in: ConfigurationLoader.pluginKeys + ConfigurationLoader.globalKeys) == nil)
    }
}
