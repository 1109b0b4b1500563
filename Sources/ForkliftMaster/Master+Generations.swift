import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc

/// Reloads as transactions: every pool gets a new generation; all of them go live together
/// once all are ready, or none does.
extension Master {
    func reloadFromDisk(waiter: Int32?) {
        do {
            let fresh = try ConfigurationLoader.load(directory: configurationDirectory)
            beginReload(fresh, initial: false, waiter: waiter)
        } catch {
            let reason = "configuration error: \(error)"
            log.error("reload refused, the running generations keep serving: \(reason)")
            if let waiter { ControlServer.answer(waiter, ok: false, reason) }
        }
    }

    func beginReload(_ fresh: Configuration, initial: Bool, waiter: Int32? = nil) {
        if phase == .stopping {
            if let waiter { ControlServer.answer(waiter, ok: false, "forklift is stopping") }
            return
        }
        if upgrade != nil {
            let reason = "a binary upgrade is in progress; reload once it is done"
            log.error("reload refused: \(reason)")
            if let waiter { ControlServer.answer(waiter, ok: false, reason) }
            return
        }
        if transaction != nil {
            // One at a time. The next one re-reads the files once this one is over: the
            // plugin files may have changed since this one copied them.
            reloadPending = true
            if let waiter { pendingReloadWaiters.append(waiter) }
            return
        }
        var candidate = ReloadTransaction(configuration: fresh, isInitial: initial)
        if let waiter { candidate.waiters.append(waiter) }
        candidate.waiters += pendingReloadWaiters
        pendingReloadWaiters = []
        for pool in fresh.pools {
            do {
                let (_, opened) = try listeners.acquire(pool)
                if opened {
                    candidate.openedAddresses.append(pool.listen)
                    log.notice("pool \(pool.name) listening on \(listeners.describe(pool.listen))")
                }
            } catch {
                transaction = candidate
                rollback(because: "pool \(pool.name): cannot listen on \(pool.listen): \(error)")
                return
            }
        }
        transaction = candidate
        for pool in fresh.pools {
            let loading = backgroundLoading(isInitial: initial, limit: fresh.global.backgroundLoading)
            guard let pid = startHost(pool, role: .candidate, global: fresh.global, backgroundLoading: loading) else {
                rollback(because: "pool \(pool.name): cannot start a host process")
                return
            }
            transaction?.candidates[pool.name] = pid
        }
    }

    /// Every candidate ready: they go live, the generations they replace drain.
    func commitIfReady() {
        guard let committing = transaction,
              committing.candidates.values.allSatisfy({ hosts[$0]?.isReady == true }) else { return }
        transaction = nil
        let previous = configuration
        configuration = committing.configuration
        applyGlobalChanges(from: previous.global)

        let now = MonotonicInstant.now()
        let replaced = hosts.filter { $0.value.role == .live || $0.value.role == .replacement }.map(\.key)
        for pid in replaced {
            drain(pid, now: now, retire: true) // replaced by a candidate, or its pool was removed
        }
        waitUntilNoneWaiting(replaced)
        var lines: [String] = []
        for (pool, pid) in committing.candidates.sorted(by: { $0.key < $1.key }) {
            goLive(pid)
            lines.append("pool \(pool) gen \(hosts[pid]!.generation): \(hosts[pid]!.summary ?? "")")
        }
        listeners.close(allBut: Set(configuration.pools.map(\.listen)))
        let elapsed = Int(committing.started.seconds(until: now) * 1000)
        let message = (committing.isInitial ? "started" : "reloaded") + " in \(elapsed) ms: " + lines.joined(separator: "; ")
        log.notice("\(message)")
        for waiter in committing.waiters { ControlServer.answer(waiter, ok: true, message) }
        if committing.isInitial {
            phase = .running
            log.notice("forklift is ready: \(configuration.pools.count) pool(s) serving")
            if let handoff {
                // Ours now: the pid file, the control socket. Then tell the master that started
                // us: it drains its generations and leaves.
                ownsFiles = true
                do {
                    try PidFile(path: configuration.global.pidFile).write(replacing: handoff.previousMaster)
                } catch {
                    log.error("cannot write the pid file: \(error)")
                }
                try? writeAll(handoff.readyFD, "ready\n")
                closeDescriptor(handoff.readyFD)
            }
        }
        runPendingReload()
    }

    /// The reload asked for while the last one ran.
    func runPendingReload() {
        guard reloadPending else { return }
        reloadPending = false
        let waiters = pendingReloadWaiters
        pendingReloadWaiters = []
        do {
            let fresh = try ConfigurationLoader.load(directory: configurationDirectory)
            pendingReloadWaiters = waiters
            beginReload(fresh, initial: false)
        } catch {
            let reason = "configuration error: \(error)"
            log.error("reload refused, the running generations keep serving: \(reason)")
            for waiter in waiters { ControlServer.answer(waiter, ok: false, reason) }
        }
    }

    /// A step of the reload failed: tear the new generation down, keep the old one.
    func rollback(because reason: String) {
        guard let failed = transaction else { return }
        transaction = nil
        for pid in failed.candidates.values where hosts[pid] != nil {
            // Never live, so nothing in flight: KILL at once, even a host stuck in its preload
            // or its workers' init (a TERM would wait for it to finish loading).
            drain(pid, now: .now(), retire: true)
            ChildProcess.send(.kill, toGroup: pid)
        }
        listeners.close(failed.openedAddresses)
        for waiter in failed.waiters { ControlServer.answer(waiter, ok: false, "reload failed, rolled back: \(reason)") }
        if failed.isInitial {
            log.error("forklift refuses to start: \(reason)")
            if let handoff {
                // Tell the upgrading master why, at once.
                handoff.reportFailure(reason)
                closeDescriptor(handoff.readyFD)
            }
            exitCode = 1
            beginStop()
            return
        }
        let serving = hosts.values.filter { $0.role == .live }.map { "pool \($0.pool.name) gen \($0.generation)" }
        log.error("reload failed and was rolled back; still serving \(serving.joined(separator: ", ")): \(reason)")
        runPendingReload()
    }

    /// Let a ready host's workers accept connections.
    func goLive(_ pid: pid_t) {
        guard var host = hosts[pid] else { return }
        host.role = .live
        hosts[pid] = host
        restarts.succeeded(pool: host.pool.name)
        scoreboard.slot(host.slotIndex).markLive()
        ChildProcess.send(.usr2, to: pid)
        log.notice("\(host.label) is live")
    }

    /// TERM a host and its workers: idle workers leave at once, busy ones finish their
    /// request. KILL at die_timeout (0: wait forever).
    ///
    /// `retire` (a newer generation takes over) also tells its workers not to take the
    /// connection they may just have been woken for: the new generation will.
    func drain(_ pid: pid_t, now: MonotonicInstant, retire: Bool) {
        guard hosts[pid]?.isDraining == false else { return }
        endBackgroundLoading(pid, because: .stopping) // a TERMed host still loading finishes its preload first
        guard var host = hosts[pid] else { return }
        let timeout = configuration.global.dieTimeout
        host.role = .draining(deadline: timeout > 0 ? now.advanced(bySeconds: timeout) : nil)
        hosts[pid] = host
        if retire { scoreboard.slot(host.slotIndex).retire() }
        // The whole group at once: waiting for the host to pass TERM on would leave its
        // workers accepting connections a little longer.
        ChildProcess.send(.term, toGroup: pid)
        log.info("\(host.label) is draining")
    }

    /// Until no worker of these (retired) hosts can still be woken for a connection. Idle
    /// workers leave on TERM within a millisecond; bounded, in case one died mid-wait.
    func waitUntilNoneWaiting(_ pids: [pid_t]) {
        let slotsToWatch = pids.compactMap { hosts[$0].map { scoreboard.slot($0.slotIndex) } }
        let deadline = MonotonicInstant.now().advanced(bySeconds: 0.2)
        while slotsToWatch.contains(where: { $0.waitingWorkers > 0 }) && MonotonicInstant.now() < deadline {
            usleep(100)
        }
        if slotsToWatch.contains(where: { $0.waitingWorkers > 0 }) {
            log.warning("an old worker still counted as waiting after 200 ms (stalled client, or it died mid-accept); the new generation goes live anyway")
        }
    }

    @discardableResult
    func startHost(_ pool: PoolSettings, role: HostProcess.Role, global: GlobalSettings? = nil,
                   backgroundLoading: BackgroundLoading? = nil) -> pid_t? {
        let generation = (generations[pool.name] ?? 0) + 1
        generations[pool.name] = generation
        guard let listenFD = listeners.fd(for: pool.listen) else { return nil }
        guard let slotIndex = slots.allocate() else {
            log.error("cannot start a host for pool \(pool.name): all \(Scoreboard.capacity) scoreboard slots are in use")
            return nil
        }
        let slot = scoreboard.slot(slotIndex)
        slot.reset()
        var reportPipe: Pipe?
        do {
            let pipe = try Pipe(nonBlocking: false)
            reportPipe = pipe
            try setNonBlocking(pipe.readEnd)
            let launch = HostLaunch(global: global ?? configuration.global, pool: pool, generation: generation,
                                    listenFD: listenFD, reportFD: pipe.writeEnd, masterPID: getpid(), slot: slot,
                                    loadsInBackground: backgroundLoading != nil)
            let signals = self.signals!
            let body = hostBody
            let pid = try ChildProcess.spawn(newProcessGroup: true, prepareChild: {
                signals.reset()
                // Only this pool's socket, the report pipe and the log: other pools' sockets
                // must close when the master closes them, and a control client must see EOF.
                SelfInspection.closeDescriptors(except: [listenFD, pipe.writeEnd, LogDestination.fileDescriptor])
            }, { body(launch) })
            closeDescriptor(pipe.writeEnd)
            hosts[pid] = HostProcess(pool: pool, generation: generation, pid: pid, started: .now(), slotIndex: slotIndex,
                                     role: role, reportFD: pipe.readEnd, backgroundLoading: backgroundLoading)
            log.info("started host pid \(pid) for pool \(pool.name) gen \(generation)")
            return pid
        } catch {
            reportPipe?.close()
            slots.release(slotIndex)
            let delay = restarts.failed(pool: pool.name)
            log.error("cannot start a host for pool \(pool.name): \(error); retrying in \(delay) s")
            return nil
        }
    }

    /// Graceful stop: every host drains; the master exits when all are gone.
    func beginStop() {
        guard phase != .stopping else { return }
        phase = .stopping
        reloadPending = false
        for waiter in pendingReloadWaiters { ControlServer.answer(waiter, ok: false, "forklift is stopping") }
        pendingReloadWaiters = []
        if let interrupted = transaction {
            transaction = nil
            for waiter in interrupted.waiters { ControlServer.answer(waiter, ok: false, "forklift is stopping") }
        }
        if let upgrade {
            ChildProcess.send(.term, to: upgrade.pid) // it never served: it leaves at once
            failUpgrade("forklift is stopping")
        }
        if ownsFiles { listeners.refuseNewConnections() }
        let now = MonotonicInstant.now()
        for pid in hosts.keys { drain(pid, now: now, retire: false) }
    }

    /// Settings that change without a restart: the log level and file.
    func applyGlobalChanges(from old: GlobalSettings) {
        let new = configuration.global
        LogDestination.level = new.logLevel
        if new.errorLog != old.errorLog {
            do { try LogDestination.open(path: new.errorLog) } catch { log.error("cannot open error_log: \(error)") }
        }
        if new.pidFile != old.pidFile || new.controlSocket != old.controlSocket {
            log.warning("pid and control_socket changes take effect at the next restart")
        }
    }
}
