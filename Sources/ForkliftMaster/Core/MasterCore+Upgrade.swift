import ForkliftConfig
import ForkliftSystem
import Glibc

/// Replacing the forklift binary without failing a request, with the same strict switch as a
/// reload: the old master execs the binary now on disk with every socket inherited; the new
/// one loads its first generation gated and says "ready"; the old one retires its own
/// generations, waits until none of its workers can take a connection, and says "go"; only
/// then does the new one serve. The old master then drains and leaves, without removing the
/// sockets or the pid file that the new one now owns. (nginx and unicorn upgrade by re-exec
/// too, but let both generations accept for a while.)
extension MasterCore {
    mutating func beginUpgrade(waiter: ClientID?, now: MonotonicInstant) -> [Action] {
        guard phase == .running, transaction == nil, switchInFlight == nil, upgrade == nil else {
            let reason = phase != .running ? "forklift is not running normally" : "a reload or an upgrade is in progress"
            return waiter.map { [.answer($0, ok: false, "cannot upgrade now: \(reason)")] } ?? []
        }
        // The new master has reload_timeout for its first generation, and then rolls back by
        // itself; a little more, in case it hangs.
        upgrade = UpgradeInFlight(pid: nil, waiter: waiter, started: now,
                                  deadline: now.advanced(bySeconds: configuration.global.reloadTimeout + 10))
        return [.forkUpgrade]
    }

    mutating func upgradeForked(_ pid: pid_t, now: MonotonicInstant) -> [Action] {
        guard upgrade != nil else { return [.signal(pid, .term)] }
        upgrade?.pid = pid
        return [.log(.notice, "upgrade: started the new master as pid \(pid); this master hands over once its first generation is ready")]
    }

    mutating func upgradeMessage(_ message: UpgradeMessage, now: MonotonicInstant) -> [Action] {
        guard let current = upgrade else { return [] }
        switch message {
        case .ready:
            guard !current.switching else { return [] }
            upgrade?.switching = true
            let retiring = hosts.values.filter(\.covers).map(\.pid).sorted()
            return [.log(.notice, "upgrade: the new master's first generation is ready; retiring this master's generations")]
                + beginSwitch(retiring: retiring, promoting: [], purpose: .handoff, now: now)
        case .failed(let reason):
            return failUpgrade("the new master could not start: \(reason)", now: now)
        case .closed:
            // Before go, whenever it comes: the new master is gone (or going), so it cannot serve.
            return failUpgrade(current.switching ? "the new master went away while this one retired its generations"
                                                 : "the new master exited before it was ready (its own messages are in the log or on standard error)", now: now)
        }
    }

    mutating func upgradeExited(_ status: ExitStatus, now: MonotonicInstant) -> [Action] {
        guard upgrade != nil else { return [] }
        return failUpgrade("the new master \(status) before it was ready", now: now)
    }

    mutating func failUpgrade(_ reason: String, now: MonotonicInstant) -> [Action] {
        guard let failed = upgrade else { return [] }
        upgrade = nil
        if switchInFlight?.purpose == .handoff { switchInFlight = nil } // nobody to hand over to
        var actions: [Action] = [.log(.error, "upgrade failed, this master keeps serving: \(reason)")]
        if let waiter = failed.waiter { actions.append(.answer(waiter, ok: false, "upgrade failed, the running master keeps serving: \(reason)")) }
        if failed.switching, phase != .stopping {
            // Its generations were retired for the handover that did not happen: serve again
            // with fresh ones, at once (the retired ones are already leaving).
            actions.append(.log(.error, "upgrade: the generations retired for the handover are replaced"))
            for pool in configuration.pools where !isCovered(pool.name) {
                _ = restarts.failed(pool: pool.name, now: now)
            }
        }
        return actions
    }

    /// The old generations are retired: the new master serves, this one leaves.
    mutating func handOver(now: MonotonicInstant) -> [Action] {
        guard let done = upgrade, let pid = done.pid else { return [] }
        upgrade = nil
        ownsFiles = false
        // systemd follows the new master before it says READY=1 (its first word as the main
        // process), so MAINPID goes out before go.
        var actions: [Action] = supervision == nil ? [] : [.notifyService(.mainPID(pid))]
        actions += [.tellUpgrade(.go), .giveUpFiles,
                                 .log(.notice, "upgrade: the new master (pid \(pid)) serves; this one drains its generations and leaves")]
        if let waiter = done.waiter { actions.append(.answer(waiter, ok: true, "upgraded: the new master is pid \(pid)")) }
        return actions + beginStop(now: now)
    }

    /// The new master's side: the old one says go (or is gone), or gives up.
    mutating func previousMasterMessage(_ message: HandoffMessage, now: MonotonicInstant) -> [Action] {
        switch message {
        case .go, .closed:
            guard handoff?.awaitingGoSince != nil, let committing = transaction else {
                // It died before we were ready: we serve as soon as we are (see commitIfReady).
                if message == .closed { handoff?.previousGone = true }
                return []
            }
            handoff = nil
            ownsFiles = true
            let note: Action = .log(.notice, message == .go ? "the previous master retired its generations: serving" : "the previous master is gone: serving")
            return [note, .takeOverFiles] + beginSwitch(retiring: [], promoting: committing.candidates.values.sorted(), purpose: .commit(committing), now: now)
        case .abort:
            handoff = nil
            return rollback(because: "the previous master gave up on this upgrade", now: now)
        }
    }
}
