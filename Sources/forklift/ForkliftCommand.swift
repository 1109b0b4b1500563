import ArgumentParser

struct ForkliftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forklift",
        abstract: "A pre-forking FastCGI application server for Swift plugins.",
        discussion: "forklift -t (or --test) [--conf DIR] is forklift check, as nginx -t and php-fpm -t.",
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

/// `forklift -t` and `forklift --test`, nginx's and PHP-FPM's spelling of `forklift check`.
/// swift-argument-parser has no flag that runs a subcommand, so the arguments are rewritten
/// before parsing: `-t [--conf DIR]` and `--conf DIR -t` become `check [--conf DIR]`. With a
/// subcommand named (`forklift run -t`), they are left for the parser to judge.
enum TestFlag {
    static func rewrite(_ arguments: [String]) -> [String] {
        guard let at = arguments.firstIndex(where: { $0 == "-t" || $0 == "--test" }) else { return arguments }
        var rest = arguments
        rest.remove(at: at)
        var index = rest.startIndex
        while index < rest.endIndex {
            if rest[index] == "--conf" {
                index += 2
            } else if rest[index].hasPrefix("-") {
                index += 1
            } else {
                return arguments
            }
        }
        return ["check"] + rest
    }
}
