import ArgumentParser
import ForkliftConfig
import ForkliftHost
import ForkliftLogging
import ForkliftMaster
import ForkliftSystem
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the server in the foreground (logs to standard error unless error_log is set)."
    )

    @OptionGroup var options: ConfigurationOptions

    @Flag(name: .customLong("single-process"), help: "Serve one pool from this process alone, without forking (for a debugger: gdb --args forklift run --single-process).")
    var singleProcess = false

    @Flag(name: [.customShort("R"), .customLong("allow-to-run-as-root")],
          help: "Let pools without a user (or with user root) run their workers as root when forklift is started as root (PHP-FPM's -R); without it, such a configuration is refused.")
    var allowToRunAsRoot = false

    @Option(help: ArgumentHelp("With --single-process: the pool to serve (default: the first).", valueName: "name"))
    var pool: String?

    @Flag(help: "Detach into the background; exit 0 once every pool is live, or non-zero with the reason.")
    var daemonize = false

    func validate() throws {
        if pool != nil && !singleProcess { throw ValidationError("--pool goes with --single-process") }
        if daemonize && singleProcess { throw ValidationError("--daemonize and --single-process exclude each other") }
    }

    func run() throws {
        if singleProcess {
            // One process that is itself the worker: pools' privileges do not apply (there is no
            // host to take them on), so as root it needs -R like a pool without a user.
            if geteuid() == 0 && !allowToRunAsRoot {
                throw ForkliftExit(message: "--single-process runs the plugins in this process, as root, without the pool's user, group or chroot: pass --allow-to-run-as-root (-R), or run it as the pool's user")
            }
            let configuration = try loadConfiguration(options.directory)
            LogDestination.level = configuration.global.logLevel
            LogDestination.format = configuration.global.logFormat
            // Its log goes to standard error, where the debugger's user reads it.
            let status = SingleProcess.run(configuration, pool: pool)
            if status != 0 { throw ExitCode(status) }
            return
        }
        // Started by `forklift upgrade`: take over the old master's sockets.
        let handoff = Handoff.fromEnvironment()
        let configuration: Configuration
        let rootPolicy = RootPolicy(effectiveUser: geteuid(), allowRoot: allowToRunAsRoot)
        do {
            configuration = try loadConfiguration(options.directory, rootPolicy: rootPolicy)
        } catch {
            handoff?.reportFailure("\(error)")
            throw error
        }
        LogDestination.level = configuration.global.logLevel
        LogDestination.format = configuration.global.logFormat
        do {
            try LogDestination.open(path: configuration.global.errorLog)
        } catch {
            throw ForkliftExit(message: "cannot open error_log: \(error)")
        }
        // The master never runs plugin code: it receives the host's body and only runs it
        // in the processes it forks.
        let directory = URL(fileURLWithPath: options.directory).standardizedFileURL.path
        if daemonize && handoff == nil {
            // The configuration was read here, so its errors are printed here; the daemon runs
            // `forklift run` again (without --daemonize) and says how its start went.
            let logFD = configuration.global.errorLog == nil ? nil : LogDestination.fileDescriptor
            // argv[0] is the path itself: the daemon's `forklift upgrade` execs what is at that path.
            let executable = Master.startupExecutablePath()
            try Daemon.detach(executable: executable, arguments: [executable, "run", "--conf", directory] + (allowToRunAsRoot ? ["--allow-to-run-as-root"] : []),
                              standardError: logFD)
        }
        let master = Master(configuration: configuration, configurationDirectory: directory, rootPolicy: rootPolicy, handoff: handoff, hostBody: Host.run)
        master.readinessFD = Daemon.readinessDescriptor()
        let status = master.run()
        if status != 0 { throw ExitCode(status) }
    }
}

/// A failure the CLI reports as one line on standard error, with exit status 1.
struct ForkliftExit: Error, CustomStringConvertible {
    let message: String
    var description: String { "forklift: \(message)" }
}

func loadConfiguration(_ directory: String, rootPolicy: RootPolicy? = nil) throws -> Configuration {
    do {
        return try ConfigurationLoader.load(directory: directory, rootPolicy: rootPolicy)
    } catch {
        throw ForkliftExit(message: "configuration error: \(error)")
    }
}
