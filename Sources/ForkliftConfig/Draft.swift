import Foundation

/// What the files said, before paths are resolved against the final `prefix` (which a later
/// file may still change) and before checks that span files.
struct Draft {
    var prefix: String?
    var pid: String?
    var errorLog: String?
    var logLevel: LogLevel = .notice
    var logFormat: LogFormat = .text
    var dieTimeout: Double = 60
    var reloadTimeout: Double = 60
    var backgroundLoading: Double = 30
    var controlSocket: String?
    var emergencyRestartThreshold = 0
    var emergencyRestartInterval = 0.0
    var pools: [Pool] = []

    struct Pool {
        var name: String
        var file: String
        var listen: String
        var backlog: Int32 = 511
        var listenOptions = ListenOptionsReader.Options()
        var sizing = PoolSizingReader.Sizing()
        var privileges = ProcessPrivileges()
        var status = PoolStatusReader.Status()
        var requestSlowlogTimeout = 0.0
        var allBusyWarning = 10.0
        var requestReadTimeout = 5.0
        var requestWriteTimeout = 30.0
        var keepaliveTimeout = 10.0
        var requestTerminateTimeout = 0.0
        var maxParamsSize = 64 * 1024
        var maxBodySize = 0
        var slowlog: String?
        var catchWorkersOutput = false
        var decorateWorkersOutput = true
        var accessLog: String?
        var accessFormat = AccessLogFormat.phpFPMDefault
        var accessLogFormat: LogFormat = .text
        var maxRequests = 0
        var maxRequestsJitter = 0
        var maxPrivateMemory = 0
        var memoryLogInterval = 0.0
        var plugins: [Plugin] = []
    }

    struct Plugin {
        var name: String
        var path: String
        var route: String
        var settings: [PluginSettings.Setting]
        var settingsJSON: String
        var requestTerminateTimeout: Double?
    }

    /// The file that set each `[global]` key last, for errors that name it.
    var globalFiles: [String: String] = [:]

    func resolve(configurationDirectory: String, lastFile: String, running: RunningMaster? = nil,
                 rootPolicy: RootPolicy? = nil) throws(ConfigurationError) -> Configuration {
        let parent = URL(fileURLWithPath: configurationDirectory).deletingLastPathComponent().path
        let prefixPath = prefix.map { Paths.resolve($0, against: configurationDirectory) } ?? parent
        var global = GlobalSettings(
            prefix: prefixPath,
            pidFile: Paths.resolve(pid ?? "forklift.pid", against: prefixPath),
            errorLog: errorLog.map { Paths.resolve($0, against: prefixPath) },
            logLevel: logLevel,
            dieTimeout: dieTimeout,
            reloadTimeout: reloadTimeout,
            backgroundLoading: backgroundLoading,
            controlSocket: controlSocket.map { Paths.resolve($0, against: prefixPath) }
        )
        guard !pools.isEmpty else {
            throw ConfigurationError(file: lastFile, key: nil, "no [pool.NAME] table in any file: there is nothing to serve")
        }
        if (emergencyRestartThreshold > 0) != (emergencyRestartInterval > 0) {
            throw ConfigurationError(file: lastFile, key: emergencyRestartThreshold > 0 ? "global.emergency_restart_interval" : "global.emergency_restart_threshold",
                                     "emergency_restart_threshold and emergency_restart_interval work together: set both above 0, or neither")
        }
        global.emergencyRestartThreshold = emergencyRestartThreshold
        global.logFormat = logFormat
        global.emergencyRestartInterval = emergencyRestartInterval
        let claims = try PathClaims(global: global, pools: pools, prefix: prefixPath, controlSocketIsSet: controlSocket != nil,
                                    globalFiles: globalFiles, lastFile: lastFile, running: running)
        var resolved: [PoolSettings] = []
        for pool in pools {
            let address = claims.listen[pool.name]!
            var settings = PoolSettings(name: pool.name, listen: address, maxChildren: pool.sizing.maxChildren, plugins: pool.plugins.map {
                var plugin = PluginSettings(name: $0.name, path: Paths.resolve($0.path, against: prefixPath), route: $0.route,
                                            settings: $0.settings, settingsJSON: $0.settingsJSON)
                plugin.requestTerminateTimeout = $0.requestTerminateTimeout
                return plugin
            })
            settings.statusListen = claims.statusListen[pool.name]
            settings.listenBacklog = pool.backlog
            if let rootPolicy, let problem = rootPolicy.problem(with: pool.privileges) {
                throw ConfigurationError(file: pool.file, key: "pool.\(pool.name).\(problem.key)", problem.message)
            }
            settings.privileges = pool.privileges
            settings.socketPermissions = try Self.socketPermissions(of: pool, listening: [address, claims.statusListen[pool.name]].compactMap { $0 })
            settings.allowedClients = try Self.allowedClients(of: pool, listening: address)
            settings.processManager = pool.sizing.processManager
            settings.startServers = pool.sizing.startServers
            settings.minSpareServers = pool.sizing.minSpareServers
            settings.maxSpareServers = pool.sizing.maxSpareServers
            settings.maxSpawnRate = pool.sizing.maxSpawnRate
            settings.processIdleTimeout = pool.sizing.processIdleTimeout
            settings.standbyWorkers = pool.sizing.standbyWorkers
            settings.statusPath = pool.status.statusPath
            settings.pingPath = pool.status.pingPath
            settings.pingResponse = pool.status.pingResponse
            settings.requestSlowlogTimeout = pool.requestSlowlogTimeout
            settings.allBusyWarning = pool.allBusyWarning
            settings.requestReadTimeout = pool.requestReadTimeout
            settings.requestWriteTimeout = pool.requestWriteTimeout
            settings.keepaliveTimeout = pool.keepaliveTimeout
            settings.requestTerminateTimeout = pool.requestTerminateTimeout
            settings.maxParamsSize = pool.maxParamsSize
            settings.maxBodySize = pool.maxBodySize
            settings.slowlog = pool.slowlog.map { Paths.resolve($0, against: prefixPath) }
            settings.catchWorkersOutput = pool.catchWorkersOutput
            settings.decorateWorkersOutput = pool.decorateWorkersOutput
            settings.accessLog = pool.accessLog.map { Paths.resolve($0, against: prefixPath) }
            settings.accessFormat = pool.accessFormat
            settings.accessLogFormat = pool.accessLogFormat
            settings.maxRequests = pool.maxRequests
            settings.maxRequestsJitter = pool.maxRequestsJitter
            settings.maxPrivateMemory = pool.maxPrivateMemory
            settings.memoryLogInterval = pool.memoryLogInterval
            resolved.append(settings)
        }
        return Configuration(global: global, pools: resolved, files: [])
    }
}

extension Draft {
    /// listen_owner, listen_group and listen_mode are a unix socket file's: on a pool with none
    /// they would do nothing, and say it does.
    static func socketPermissions(of pool: Pool, listening addresses: [ListenAddress]) throws(ConfigurationError) -> SocketPermissions {
        if let key = pool.listenOptions.permissionKeys.first, !addresses.contains(where: { if case .unix = $0 { true } else { false } }) {
            throw ConfigurationError(file: pool.file, key: "pool.\(pool.name).\(key)",
                                     "applies to unix sockets, and pool \"\(pool.name)\" has none (listen\(addresses.count > 1 ? " and status_listen are" : " is") TCP): "
                                         + "say which clients it serves with listen_allowed_clients")
        }
        var permissions = pool.listenOptions.permissions
        // As PHP-FPM: a pool's sockets belong to its user and group unless listen_owner or
        // listen_group say otherwise, where the master can give them away (as root).
        if geteuid() == 0, let user = pool.privileges.user {
            if permissions.owner == nil { permissions.owner = user }
            if permissions.group == nil { permissions.group = pool.privileges.group }
        }
        return permissions
    }

    /// listen_allowed_clients checks a TCP peer's address: a unix socket's clients have none,
    /// and its listen_owner, listen_group and listen_mode say who may connect.
    static func allowedClients(of pool: Pool, listening address: ListenAddress) throws(ConfigurationError) -> AllowedClients? {
        guard let allowed = pool.listenOptions.allowedClients else { return nil }
        if case .unix(let path) = address {
            throw ConfigurationError(file: pool.file, key: "pool.\(pool.name).listen_allowed_clients",
                                     "applies to a TCP listen only, and pool \"\(pool.name)\" listens on the unix socket \(path): "
                                         + "say who may connect with listen_owner, listen_group and listen_mode")
        }
        return allowed
    }
}

enum Paths {
    static func resolve(_ path: String, against base: String) -> String {
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : URL(fileURLWithPath: base).appendingPathComponent(path)
        return url.standardizedFileURL.path
    }
}
