import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc

/// Replacing the forklift binary without failing a request: exec the binary now on disk with
/// every socket inherited; once its first generation is live, this master drains its own and
/// leaves, without removing the sockets or the pid file that the new master now owns.
struct UpgradeInFlight {
    let pid: pid_t
    let statusFD: Int32
    let waiter: Int32?
    var lines = LineBuffer()
}

extension Master {
    func beginUpgrade(waiter: Int32?) {
        guard phase == .running, transaction == nil, upgrade == nil else {
            let reason = phase != .running ? "forklift is not running normally" : "a reload or an upgrade is in progress"
            if let waiter { ControlServer.answer(waiter, ok: false, "cannot upgrade now: \(reason)") }
            return
        }
        guard let control else { return }
        var statusPipe: Pipe?
        do {
            let status = try Pipe(nonBlocking: false)
            statusPipe = status
            var handoff = Handoff(listeners: [:], controlFD: control.fd, readyFD: status.writeEnd, previousMaster: getpid(), generations: generations)
            for (address, fd) in listeners.byAddress { handoff.listeners[address.description] = fd }
            let executable = executablePath
            let arguments = ["forklift", "run", "--conf", configurationDirectory]
            let signals = self.signals!
            let environment = handoff.environmentValue
            let keep = Set(handoff.descriptors + [0, 1, 2, LogDestination.fileDescriptor])
            let pid = try ChildProcess.spawn(prepareChild: {
                signals.reset()
                SelfInspection.closeDescriptors(except: keep)
                for fd in keep { try? setCloseOnExec(fd, false) }
                setenv("FORKLIFT_HANDOFF", environment, 1)
            }) {
                ChildProcess.exec(executable, arguments)
            }
            closeDescriptor(status.writeEnd)
            try setNonBlocking(status.readEnd)
            upgrade = UpgradeInFlight(pid: pid, statusFD: status.readEnd, waiter: waiter)
            log.notice("upgrade: started \(executable) as pid \(pid); this master hands over once it serves")
        } catch {
            statusPipe?.close()
            log.error("upgrade failed: \(error)")
            if let waiter { ControlServer.answer(waiter, ok: false, "upgrade failed: \(error)") }
        }
    }

    /// Reads the new master's status pipe: "ready" hands over; EOF without it is a failure.
    func readUpgradeStatus() {
        guard var current = upgrade else { return }
        var finished = false
        var ready = false
        var failure: String?
        while true {
            guard let bytes = try? readAvailable(current.statusFD) else { finished = true; break }
            if bytes.isEmpty { break }
            for line in current.lines.append(bytes) {
                if line == "ready" { ready = true }
                if line.hasPrefix("failed ") { failure = String(line.dropFirst(7)) }
            }
        }
        upgrade = current
        if ready {
            handOver()
        } else if let failure {
            failUpgrade("the new master could not start: \(failure)")
        } else if finished {
            failUpgrade("the new master exited before it was ready (its own messages are in the log or on standard error)")
        }
    }

    func failUpgrade(_ reason: String) {
        guard let failed = upgrade else { return }
        upgrade = nil
        closeDescriptor(failed.statusFD)
        log.error("upgrade failed, this master keeps serving: \(reason)")
        if let waiter = failed.waiter { ControlServer.answer(waiter, ok: false, "upgrade failed, the running master keeps serving: \(reason)") }
    }

    private func handOver() {
        guard let done = upgrade else { return }
        upgrade = nil
        closeDescriptor(done.statusFD)
        ownsFiles = false
        log.notice("upgrade: the new master (pid \(done.pid)) serves; this one drains its generations and leaves")
        if let waiter = done.waiter { ControlServer.answer(waiter, ok: true, "upgraded: the new master is pid \(done.pid)") }
        // Stop taking control commands: the socket is the new master's now.
        closeDescriptor(control?.fd ?? -1)
        control = nil
        beginStop()
    }

    /// The path this master was started as, made absolute but with symlinks left alone: exec
    /// follows them then, so a deploy that renames a new binary into place, or that switches
    /// a symlink to a new release, both start the new binary.
    static func startupExecutablePath() -> String {
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
