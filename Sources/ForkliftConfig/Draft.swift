import Foundation

/// What the files said, before paths are resolved against the final `prefix` (which a later
/// file may still change) and before checks that span files.
struct Draft {
    var prefix: String?
    var pid: String?
    var errorLog: String?
    var logLevel: LogLevel = .notice
    var dieTimeout: Double = 60
    var reloadTimeout: Double = 60
    var backgroundLoading: Double = 30
    var controlSocket: String?
    var pools: [Pool] = []

    struct Pool {
        var name: String
        var file: String
        var listen: String
        var listenKey: String
        var backlog: Int32 = 511
        var maxChildren = 1
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
    }

    func resolve(configurationDirectory: String, lastFile: String) throws(ConfigurationError) -> Configuration {
        let parent = URL(fileURLWithPath: configurationDirectory).deletingLastPathComponent().path
        let prefixPath = prefix.map { Paths.resolve($0, against: configurationDirectory) } ?? parent
        let global = GlobalSettings(
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
        var listeners: [ListenAddress: String] = [:]
        var resolved: [PoolSettings] = []
        for pool in pools {
            let address: ListenAddress
            do {
                address = try ListenParser.parse(pool.listen, prefix: prefixPath)
            } catch {
                throw ConfigurationError(file: pool.file, key: pool.listenKey, error.message)
            }
            if let other = listeners[address] {
                throw ConfigurationError(file: pool.file, key: pool.listenKey, "\(address) is already the listen address of pool \"\(other)\"")
            }
            listeners[address] = pool.name
            var settings = PoolSettings(name: pool.name, listen: address, maxChildren: pool.maxChildren, plugins: pool.plugins.map {
                PluginSettings(name: $0.name, path: Paths.resolve($0.path, against: prefixPath), route: $0.route,
                               settings: $0.settings, settingsJSON: $0.settingsJSON)
            })
            settings.listenBacklog = pool.backlog
            settings.maxRequests = pool.maxRequests
            settings.maxRequestsJitter = pool.maxRequestsJitter
            settings.maxPrivateMemory = pool.maxPrivateMemory
            settings.memoryLogInterval = pool.memoryLogInterval
            resolved.append(settings)
        }
        return Configuration(global: global, pools: resolved, files: [])
    }
}

enum Paths {
    static func resolve(_ path: String, against base: String) -> String {
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : URL(fileURLWithPath: base).appendingPathComponent(path)
        return url.standardizedFileURL.path
    }
}
