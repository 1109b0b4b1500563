import ArgumentParser
import ForkliftConfig
import ForkliftHost
import ForkliftLogging
import ForkliftSystem
import Glibc

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate the configuration and load every plugin in a throwaway process (like nginx -t)."
    )

    @OptionGroup var options: ConfigurationOptions

    func run() throws {
        let configuration = try loadConfiguration(options.directory)
        print("configuration: \(configuration.files.count) file(s) read, \(configuration.pools.count) pool(s)")
        var failures = 0
        for pool in configuration.pools {
            for plugin in pool.plugins {
                switch PluginProbe.run(plugin) {
                case .success(let description):
                    print("ok: pool \(pool.name): \(description)")
                case .failure(let reason):
                    failures += 1
                    print("error: pool \(pool.name): \(reason)")
                }
            }
        }
        fflush(nil)
        if failures > 0 {
            throw ForkliftExit(message: "check failed: \(failures) plugin(s) cannot be loaded")
        }
        print("forklift check: the configuration and every plugin are fine")
    }
}
