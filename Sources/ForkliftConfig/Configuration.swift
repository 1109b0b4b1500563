/// Everything `conf.d/*.toml` says, validated: paths absolute, durations in seconds.
public struct Configuration: Equatable, Sendable {
    public var global: GlobalSettings
    public var pools: [PoolSettings]
    /// The files read, in the order they were read.
    public var files: [String]

    public init(global: GlobalSettings, pools: [PoolSettings], files: [String]) {
        self.global = global
        self.pools = pools
        self.files = files
    }
}

/// How the error log and the access log write their lines: `text` for people, `json` (one
/// object per line) for a log shipper.
public enum LogFormat: String, CaseIterable, Sendable {
    case text, json
}

public enum LogLevel: String, CaseIterable, Comparable, Sendable {
    case debug, info, notice, warning, error

    public static func < (a: LogLevel, b: LogLevel) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The `[global]` table.
public struct GlobalSettings: Equatable, Sendable {
    /// Directory relative paths resolve against. Default: the parent of the configuration directory.
    public var prefix: String
    /// Where the master writes its pid. Default: `forklift.pid` under `prefix`.
    public var pidFile: String
    /// Log file; nil means standard error.
    public var errorLog: String?
    public var logLevel: LogLevel = .notice
    public var logFormat: LogFormat = .text
    /// How long a stop (or a drain after reload) waits for busy workers before KILL. 0 means forever.
    public var dieTimeout: Double = 60
    /// How long a new generation may take to load, preload and pass worker init before the
    /// reload is rolled back.
    public var reloadTimeout: Double = 60
    /// How long a reload's new generation may load at idle CPU priority (after its first
    /// 50 ms at normal priority) before it continues at normal priority. 0: never idle.
    public var backgroundLoading: Double = 30
    /// The master's control socket (`forklift reload`, `forklift stop`). Default: the pid
    /// file's path with `.sock` in place of `.pid`.
    public var controlSocket: String
    /// PHP-FPM's emergency restart: this many workers of one pool dying of a signal within
    /// `emergencyRestartInterval` restart that pool's host (a fresh generation). 0: off.
    public var emergencyRestartThreshold: Int = 0
    public var emergencyRestartInterval: Double = 0

    public init(prefix: String, pidFile: String, errorLog: String? = nil, logLevel: LogLevel = .notice,
                dieTimeout: Double = 60, reloadTimeout: Double = 60, backgroundLoading: Double = 30,
                controlSocket: String? = nil) {
        self.prefix = prefix
        self.pidFile = pidFile
        self.errorLog = errorLog
        self.logLevel = logLevel
        self.dieTimeout = dieTimeout
        self.reloadTimeout = reloadTimeout
        self.backgroundLoading = backgroundLoading
        self.controlSocket = controlSocket ?? GlobalSettings.defaultControlSocket(pidFile: pidFile)
    }

    public static func defaultControlSocket(pidFile: String) -> String {
        (pidFile.hasSuffix(".pid") ? String(pidFile.dropLast(4)) : pidFile) + ".sock"
    }
}

/// Where a pool listens.
public enum ListenAddress: Equatable, Hashable, CustomStringConvertible, Sendable {
    case unix(path: String)
    case tcp(host: String, port: UInt16)

    public var description: String {
        switch self {
        case .unix(let path): path
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// How a pool sizes itself, with PHP-FPM's names and meanings.
public enum ProcessManager: String, CaseIterable, Equatable, Sendable {
    /// A fixed number of workers, `max_children`.
    case `static`
    /// Between `min_spare_servers` and `max_spare_servers` idle workers, at most `max_children`
    /// in all; `start_servers` at first.
    case dynamic
    /// No worker until a connection waits; a worker idle for `process_idle_timeout` leaves.
    case ondemand
}

/// A `[pool.NAME]` table.
public struct PoolSettings: Equatable, Sendable {
    public var name: String
    public var listen: ListenAddress
    public var listenBacklog: Int32 = 511
    /// The owner, group and mode of its unix sockets (`listen` and `status_listen`).
    public var socketPermissions = SocketPermissions()
    /// Who its host and workers run as, and with what (user, group, chroot, env, limits).
    public var privileges = ProcessPrivileges()
    /// The clients a TCP `listen` serves; nil: every client.
    public var allowedClients: AllowedClients?
    public var processManager: ProcessManager = .static
    /// The most workers alive at once (static: the number of workers).
    public var maxChildren: Int
    /// dynamic: workers forked at start (default: min + (max - min) / 2 spare servers).
    public var startServers: Int = 0
    /// dynamic: fewer idle workers than this, and more are forked; more than the maximum,
    /// and one is stopped per second.
    public var minSpareServers: Int = 0
    public var maxSpareServers: Int = 0
    /// dynamic: at most this many forks per second (the number doubles each second while
    /// more idle workers are needed, from 1).
    public var maxSpawnRate: Int = 32
    /// ondemand: a worker idle this long leaves.
    public var processIdleTimeout: Double = 10
    /// Workers forked ahead and held back, past their worker init, until the pool needs one
    /// (a worker retired, died or was added): it takes the place at once, without a fork on the
    /// way. Not counted in max_children and not on the scoreboard until it takes a slot.
    public var standbyWorkers: Int = 0
    /// The path of the status page (PHP-FPM's `pm.status_path`); nil: none.
    public var statusPath: String?
    /// A path that answers `pingResponse` (a health check); nil: none.
    public var pingPath: String?
    public var pingResponse: String = "pong"
    /// A socket where the status page and ping are answered by a process of their own, so
    /// they answer even while every worker is busy (PHP-FPM's `pm.status_listen`).
    public var statusListen: ListenAddress?
    /// A request running longer is counted as slow and logged once, with its worker's stack; 0: off.
    public var requestSlowlogTimeout: Double = 0
    /// Where slow requests are logged (PHP-FPM's `slowlog`); nil: the error log.
    public var slowlog: String?
    /// Workers' standard output and error go to the error log, line by line.
    public var catchWorkersOutput = false
    /// ... prefixed with the pool, the worker and the stream.
    public var decorateWorkersOutput = true
    /// One line per request (PHP-FPM's `access.log`), in `accessFormat`; nil: none.
    public var accessLog: String?
    public var accessFormat = AccessLogFormat.phpFPMDefault
    /// `json`: one object per request with every field, instead of `accessFormat`.
    public var accessLogFormat: LogFormat = .text
    /// A pool whose every worker has been busy this long is reported (log and status); 0: off.
    public var allBusyWarning: Double = 10
    /// A connection has this long to send its request's records up to the end of its params,
    /// and each read of its body may wait this long; then it is closed.
    public var requestReadTimeout: Double = 5
    /// A client that reads none of the response for this long is given up.
    public var requestWriteTimeout: Double = 30
    /// An idle kept connection (FCGI_KEEP_CONN) is closed after this long; 0: never.
    public var keepaliveTimeout: Double = 10
    /// A request running longer is killed (its worker, after a backtrace); 0: never. Plugins
    /// may set their own.
    public var requestTerminateTimeout: Double = 0
    /// The most bytes a request's params may take (names, values and their lengths).
    public var maxParamsSize: Int = 64 * 1024
    /// A request with a larger body gets 413 before its plugin runs; 0: no limit.
    public var maxBodySize: Int = 0
    /// Requests a worker serves before it is replaced; 0 = never.
    public var maxRequests: Int = 0
    /// Each worker's limit is `maxRequests` plus a random 0...jitter, so they do not all
    /// restart at once.
    public var maxRequestsJitter: Int = 0
    /// A worker whose Private_Dirty memory exceeds this many bytes finishes its request and is
    /// replaced (it has un-shared too much of the preloaded data, or leaks); 0 = no limit.
    public var maxPrivateMemory: Int = 0
    /// How often the host logs its workers' memory (Pss, Private_Dirty, ...); 0 = never.
    public var memoryLogInterval: Double = 0
    public var plugins: [PluginSettings]

    public init(name: String, listen: ListenAddress, maxChildren: Int, plugins: [PluginSettings]) {
        self.name = name
        self.listen = listen
        self.maxChildren = maxChildren
        self.plugins = plugins
    }
}

/// A `[pool.POOL.plugin.NAME]` table.
public struct PluginSettings: Equatable, Sendable {
    public var name: String
    /// Absolute path of the shared object.
    public var path: String
    /// The path prefix this plugin serves, e.g. "/hello".
    public var route: String
    /// The `settings` table flattened to (dotted key, value as text), sorted by key.
    public var settings: [Setting]
    /// The `settings` table as JSON.
    public var settingsJSON: String
    /// This plugin's request_terminate_timeout, if it has its own (0: none, even if the pool has one).
    public var requestTerminateTimeout: Double?

    public struct Setting: Equatable, Sendable {
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(name: String, path: String, route: String, settings: [Setting] = [], settingsJSON: String = "{}") {
        self.name = name
        self.path = path
        self.route = route
        self.settings = settings
        self.settingsJSON = settingsJSON
    }
}
