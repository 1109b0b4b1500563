import ForkliftLogging
import ForkliftSystem
import Glibc

/// Telling systemd (NOTIFY_SOCKET) and a `--daemonize` launcher (its readiness pipe) what
/// the core decided. Neither may hold the master up: a send that fails is logged once and
/// the master goes on serving.
extension Master {
    /// Before anything forks: read systemd's variables and take them out of the environment,
    /// so that hosts and workers never talk to systemd.
    func setUpSupervision() {
        systemdEnvironment = SystemdEnvironment.current()
        SystemdEnvironment.removeFromEnvironment()
        if let environment = systemdEnvironment {
            do {
                systemd = try SystemdNotifier(address: environment.notifySocket)
                let watchdog = environment.watchdogSeconds.map { ", WATCHDOG=1 every \(Formatting.seconds($0 / 2))" } ?? ""
                log.info("systemd notifications go to \(environment.notifySocket)\(watchdog)")
            } catch {
                log.error("cannot notify systemd: \(error)")
            }
        }
        if systemd != nil || readinessFD != nil {
            core.supervision = ServiceSupervision(watchdogSeconds: systemd == nil ? nil : systemdEnvironment?.watchdogSeconds, now: .now())
        }
    }

    func notifyService(_ notice: ServiceSupervision.Notice) {
        switch notice {
        case .ready(let initial):
            if initial { tellLauncher("ready \(getpid())") }
            sendToSystemd((initial ? ["MAINPID=\(getpid())"] : []) + ["READY=1", statusField()])
        case .reloading(let microseconds):
            sendToSystemd(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)", statusField()])
        case .stopping:
            sendToSystemd(["STOPPING=1", statusField()])
        case .startFailed(let reason):
            tellLauncher("failed \(reason)")
        case .mainPID(let pid):
            sendToSystemd(["MAINPID=\(pid)", "STATUS=handing over to the new master (pid \(pid))"])
        case .watchdog:
            sendToSystemd(["WATCHDOG=1"], updatesStatus: false)
        case .status:
            let field = statusField()
            if field != lastServiceStatus { sendToSystemd([field]) }
        }
    }

    private func statusField() -> String {
        "STATUS=" + ServiceStatusLine.make(state: core.serviceState, statuses: poolStatuses(now: .now()), hosts: core.hosts.count)
    }

    private func sendToSystemd(_ fields: [String], updatesStatus: Bool = true) {
        guard let systemd else { return }
        do {
            try systemd.send(fields)
            if updatesStatus, let status = fields.last(where: { $0.hasPrefix("STATUS=") }) { lastServiceStatus = status }
            systemdFailureLogged = false
        } catch {
            if !systemdFailureLogged { log.error("cannot notify systemd (\(fields.first ?? "")): \(error)") }
            systemdFailureLogged = true
        }
    }

    /// One line, then the pipe closes: the launcher exits as soon as it has read it.
    func tellLauncher(_ line: String) {
        guard let fd = readinessFD else { return }
        try? writeAll(fd, line + "\n")
        closeDescriptor(fd)
        readinessFD = nil
    }
}
