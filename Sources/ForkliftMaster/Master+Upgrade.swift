import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc

/// The old master's half of `forklift upgrade`: exec the binary now on disk with every
/// socket inherited and a channel to talk over (see `MasterCore+Upgrade`).
extension Master {
    func forkUpgrade() {
        guard let control else {
            pending.append(.upgradeForkFailed(reason: "no control socket to hand over"))
            return
        }
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            pending.append(.upgradeForkFailed(reason: "\(SystemError("socketpair"))"))
            return
        }
        var handoff = Handoff(listeners: [:], controlFD: control.fd, channelFD: fds[1], previousMaster: getpid(), generations: core.generations)
        for (address, fd) in listeners.byAddress { handoff.listeners[address.description] = fd }
        for (address, channel) in listeners.parking { handoff.parking[address.description] = channel }
        handoff.activated = listeners.activated.map(\.description)
        handoff.data = handedOnData()
        let executable = executablePath
        // argv[0] is the path itself, so that this new master finds the same file at its own
        // next upgrade (a bare "forklift" would be looked up in PATH, maybe another binary).
        let arguments = [executable, "run", "--conf", core.configurationDirectory] + (rootPolicy.allowRoot ? ["--allow-to-run-as-root"] : [])
        let signals = self.signals!
        let environment = handoff.environmentValue
        let systemdVariables = systemdEnvironment
        let keep = Set(handoff.descriptors + [0, 1, 2, LogDestination.fileDescriptor])
        do {
            let pid = try ChildProcess.spawn(prepareChild: {
                signals.reset()
                SelfInspection.closeDescriptors(except: keep)
                for fd in keep { try? setCloseOnExec(fd, false) }
                setenv("FORKLIFT_HANDOFF", environment, 1)
                // The new master speaks to systemd once it serves; the watchdog is then its own.
                for (name, value) in systemdVariables?.variables(for: getpid()) ?? [] { setenv(name, value, 1) }
            }) {
                ChildProcess.exec(executable, arguments)
            }
            closeDescriptor(fds[1])
            try? setNonBlocking(fds[0])
            upgradeChannel = (fds[0], LineBuffer())
            upgradePID = pid
            log.notice("upgrade: exec \(executable) as pid \(pid)")
            pending.append(.upgradeForked(pid: pid))
        } catch {
            closeDescriptor(fds[0])
            closeDescriptor(fds[1])
            pending.append(.upgradeForkFailed(reason: "\(error)"))
        }
    }

    /// The path this master was started as, made absolute but with symlinks left alone: exec
    /// follows them then, so a deploy that renames a new binary into place, or that switches
    /// a symlink to a new release, both start the new binary.
    public static func startupExecutablePath() -> String {
        let arg0 = CommandLine.arguments.first ?? ""
        if arg0.hasPrefix("/") { return arg0 }
        if arg0.contains("/") {
            var cwd = [CChar](repeating: 0, count: 4096)
            if getcwd(&cwd, cwd.count) != nil {
                let directory = String(decoding: cwd.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                return directory + "/" + (arg0.hasPrefix("./") ? String(arg0.dropFirst(2)) : arg0)
            }
        } else if let path = getenv("PATH").map({ String(cString: $0) }) {
            for directory in path.split(separator: ":") where access("\(directory)/\(arg0)", X_OK) == 0 {
                return "\(directory)/\(arg0)"
            }
        }
        return resolveExecutablePath()
    }

    /// The file this process runs, from /proc/self/exe (symlinks resolved).
    static func resolveExecutablePath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments.first ?? "forklift" }
        let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(10)) : path
    }
}
