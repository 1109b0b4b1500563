import ArgumentParser

struct ForkliftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forklift",
        abstract: "A pre-forking FastCGI application server for Swift plugins.",
        version: ForkliftVersion.string,
        subcommands: [RunCommand.self, CheckCommand.self, RequestCommand.self, NewPluginCommand.self, ReloadCommand.self, StopCommand.self, StatusCommand.self, ScaleCommand.self, UpgradeCommand.self]
    )
}

enum ForkliftVersion {
    static let string = "0.1.0"
}

/// `--conf DIR`, shared by every subcommand that reads the configuration.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .customLong("conf"), help: ArgumentHelp("The configuration directory; every *.toml in it is read in lexical order.", valueName: "dir"))
    var directory: String = "conf.d"
}
