import ArgumentParser
import ForkliftConfig
import ForkliftHost
import ForkliftLogging
import ForkliftSystem
import Glibc

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the configuration and load every plugin in a throwaway process (like nginx -t; forklift -t is the same)."
    )

    @OptionGroup var options: ConfigurationOptions

    @Flag(name: [.customShort("R"), .customLong("allow-to-run-as-root")],
          help: "As `forklift run -R`: accept pools whose workers would run as root when checking as root.")
    var allowToRunAsRoot = false

    func run() throws {
        // The rule `run` applies: as root, a pool whose workers would run as root is an error.
        let configuration = try loadConfiguration(options.directory, rootPolicy: RootPolicy(effectiveUser: geteuid(), allowRoot: allowToRunAsRoot))
        print("configuration: \(configuration.files.count) file(s) read, \(configuration.pools.count) pool(s)")
        // What `run` creates first: a missing or read-only directory is found now, not at start.
        let paths = pathProblems(configuration)
        for problem in paths { print("error: \(problem)") }
        var failures = 0
        for pool in configuration.pools {
            for plugin in pool.plugins {
                switch PluginProbe.run(plugin, pool: pool) {
                case .success(let description):
                    print("ok: pool \(pool.name): \(description)")
                case .failure(let reason):
                    failures += 1
                    print("error: pool \(pool.name): \(reason)")
                }
            }
        }
        fflush(nil)
        if failures > 0 || !paths.isEmpty {
            let counts = [paths.isEmpty ? nil : "\(paths.count) path(s) cannot be created", failures > 0 ? "\(failures) plugin(s) cannot be loaded" : nil]
            throw ForkliftExit(message: "check failed: " + counts.compactMap { $0 }.joined(separator: ", "))
        }
        print("forklift check: the configuration and every plugin are fine")
    }

    /// The pid file, the control socket and every unix socket, where each cannot be created.
    private func pathProblems(_ configuration: Configuration) -> [String] {
        var problems: [String] = []
        if let problem = PidFile(path: configuration.global.pidFile).creationProblem() { problems.append("\(problem)") }
        var sockets = [("control socket", configuration.global.controlSocket)]
        for pool in configuration.pools {
            for (key, address) in [("listen", pool.listen), ("status_listen", pool.statusListen)] {
                if case .unix(let path) = address { sockets.append(("pool \(pool.name): \(key) socket", path)) }
            }
        }
        for (what, path) in sockets {
            if let code = PathProbe.whyNoNewEntry(at: path) { problems.append("\(SystemError("\(what) \(path): cannot create", errno: code))") }
        }
        return problems
    }
}
