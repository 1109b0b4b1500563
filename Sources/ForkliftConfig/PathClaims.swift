/// What a running master holds whatever the files say now: it keeps its control socket and
/// pid file until it restarts, so a reload must not listen there.
public struct RunningMaster: Equatable, Sendable {
    public var controlSocket: String
    public var pidFile: String

    public init(controlSocket: String, pidFile: String) {
        self.controlSocket = controlSocket
        self.pidFile = pidFile
    }
}

/// Every address a socket is bound to and every file the server writes, and who owns each:
/// two sockets on one address would steal each other's connections, or fail at bind with a
/// misleading "another process is already listening there"; a socket on a log or the pid
/// file fails as "a file that is not a socket is in the way", or the log replaces it.
struct PathClaims {
    private(set) var listen: [String: ListenAddress] = [:]
    private(set) var statusListen: [String: ListenAddress] = [:]

    /// A socket's owner, and what to do about sharing it.
    private struct Owner {
        let what: String
        let fix: String
    }

    private var sockets: [(address: ListenAddress, owner: Owner)] = []
    /// The files, by path: who writes each.
    private var files: [String: String] = [:]

    init(global: GlobalSettings, pools: [Draft.Pool], prefix: String, controlSocketIsSet: Bool, globalFiles: [String: String],
         lastFile: String, running: RunningMaster?) throws(ConfigurationError) {
        func globalFile(_ key: String) -> String { globalFiles[key] ?? lastFile }
        // The files first: a socket must not take the path of any of them, whichever comes first.
        var logs: [(path: String, what: String, file: String, key: String)] = []
        if let log = global.errorLog {
            logs.append((log, "the error log (global.error_log)", globalFile("error_log"), "global.error_log"))
        }
        for pool in pools {
            for (key, path) in [("slowlog", pool.slowlog), ("access_log", pool.accessLog)] {
                guard let path else { continue }
                let dotted = "pool.\(pool.name).\(key)"
                logs.append((Paths.resolve(path, against: prefix), "the \(key) of pool \"\(pool.name)\" (\(dotted))", pool.file, dotted))
            }
        }
        for log in logs where log.path == global.pidFile {
            throw ConfigurationError(file: log.file, key: log.key, "\(log.path) is the pid file (global.pid); give the log a file of its own")
        }
        for log in logs where files[log.path] == nil { files[log.path] = log.what }
        files[global.pidFile] = "the pid file (global.pid)"
        if let running, running.pidFile != global.pidFile {
            files[running.pidFile] = "the running master's pid file (it keeps it until it restarts)"
        }

        let controlKey = controlSocketIsSet ? "control_socket" : "pid"
        let control = controlSocketIsSet
            ? Owner(what: "the control socket (global.control_socket)", fix: "listen elsewhere, or move global.control_socket")
            : Owner(what: "the control socket (global.pid's path with .sock, as control_socket is not set)",
                    fix: "listen elsewhere, or set global.control_socket")
        if let other = files[global.controlSocket] {
            throw ConfigurationError(file: globalFile(controlKey), key: "global.\(controlKey)",
                                     "the control socket \(global.controlSocket) is \(other); set global.control_socket to a path of its own")
        }
        sockets.append((.unix(path: global.controlSocket), control))
        if let running, running.controlSocket != global.controlSocket {
            sockets.append((.unix(path: running.controlSocket),
                            Owner(what: "the running master's control socket (it keeps it until it restarts)",
                                  fix: "listen elsewhere until forklift is restarted")))
        }

        for pool in pools {
            listen[pool.name] = try claim(pool.listen, pool: pool, key: "listen", prefix: prefix)
            if let text = pool.status.statusListen {
                statusListen[pool.name] = try claim(text, pool: pool, key: "status_listen", prefix: prefix)
            }
        }
    }

    private mutating func claim(_ text: String, pool: Draft.Pool, key: String, prefix: String) throws(ConfigurationError) -> ListenAddress {
        let dotted = "pool.\(pool.name).\(key)"
        let address: ListenAddress
        do {
            address = try ListenParser.parse(text, prefix: prefix)
        } catch {
            throw ConfigurationError(file: pool.file, key: dotted, error.message)
        }
        for (other, owner) in sockets {
            if other == address {
                throw ConfigurationError(file: pool.file, key: dotted, "\(address) is already \(owner.what); \(owner.fix)")
            }
            if let wildcard = Self.overlap(address, other) {
                throw ConfigurationError(file: pool.file, key: dotted,
                                         "\(address) overlaps \(other), \(owner.what): \(wildcard.description) takes port \(wildcard.port) on every address; use another port")
            }
        }
        if case .unix(let path) = address, let owner = files[path] {
            throw ConfigurationError(file: pool.file, key: dotted, "\(path) is \(owner); a socket needs a path of its own")
        }
        sockets.append((address, Owner(what: "the \(key) address of pool \"\(pool.name)\" (\(dotted) in \(pool.file))",
                                       fix: "give each socket an address of its own")))
        return address
    }

    /// Two TCP addresses on one port that cannot both be bound: the wildcard one of them.
    /// (A `*` or 0.0.0.0 listener takes the port on every IPv4 address; :: on every address.)
    static func overlap(_ a: ListenAddress, _ b: ListenAddress) -> (description: String, port: UInt16)? {
        guard case .tcp(let first, let port) = a, case .tcp(let second, let other) = b, port == other, port != 0, first != second
        else { return nil }
        func anyIPv4(_ host: String) -> Bool { host == "*" || host == "0.0.0.0" }
        func isIPv6(_ host: String) -> Bool { host.contains(":") }
        for (wildcard, host) in [(first, second), (second, first)] {
            if wildcard == "::" || (anyIPv4(wildcard) && !isIPv6(host)) {
                return (ListenAddress.tcp(host: wildcard, port: port).description, port)
            }
        }
        return nil
    }
}
