import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc

/// Carrying out the core's actions: each is one system call or a few, and any answer goes
/// back to the core as an event.
extension Master {
    func perform(_ action: MasterCore.Action) {
        switch action {
        case .readConfiguration:
            do {
                pending.append(.configurationRead(.success(try ConfigurationLoader.load(directory: core.configurationDirectory, running: held, rootPolicy: rootPolicy))))
            } catch {
                pending.append(.configurationRead(.failure(error)))
            }
        case .acquireListeners(let pools):
            acquireListeners(pools)
        case .closeListeners(let keeping):
            listeners.close(allBut: keeping)
            dropParkedWithoutChannel()
        case .applySocketPermissions(let pools):
            for line in listeners.applyPermissions(of: pools) { log.log(line.level, line.message) }
        case .closeOpenedListeners(let addresses):
            listeners.close(addresses)
            dropParkedWithoutChannel()
        case .refuseNewConnections:
            listeners.refuseNewConnections()
            closeParkedConnections()
        case .forkHost(let spec):
            forkHost(spec)
        case .signal(let pid, let signal):
            if ChildProcess.send(signal, to: pid) == .notPermitted {
                log.warning("cannot send \(signal) to pid \(pid): not permitted (it runs as a user this master may not signal)")
            }
        case .signalGroup(let pid, let signal):
            if ChildProcess.send(signal, toGroup: pid) == .notPermitted {
                log.warning("cannot send \(signal) to process group \(pid): not permitted (it runs as a user this master may not signal)")
            }
        case .setPriority(let pid, let change):
            pending.append(.priorityChanged(pid, change, error: setPriority(pid, change)))
        case .markLive(let pid):
            boards[pid]?.markLive()
        case .retire(let pid):
            boards[pid]?.retire()
        case .setScaleTarget(let pid, let workers):
            boards[pid]?.setTarget(workers)
        case .countWaiting(let pids):
            // One flag per slot the master mapped: at most the board's capacity, whatever workers write.
            let waiting = pids.compactMap { boards[$0] }.map(\.waitingWorkers).reduce(0, +)
            pending.append(.waitingWorkers(waiting))
        case .answer(let client, let ok, let message):
            control?.answer(client, ok: ok, message)
        case .answerStatus(let client, let query):
            control?.answer(client, ok: true, statusAnswer(query))
        case .log(let level, let message):
            log.log(level, message)
        case .dump(let lines):
            for line in lines { log.notice("dump: \(line)") }
            for pid in core.hosts.keys.sorted() { ChildProcess.send(.dump, to: pid) }
        case .reopenLogs:
            try? LogDestination.reopen()
        case .applyGlobalSettings(let old, let new):
            applyGlobalSettings(old: old, new: new)
        case .forgetPool(let pool):
            counters.removeValue(forKey: pool)?.mapping.unmap()
        case .forkUpgrade:
            forkUpgrade()
        case .tellUpgrade(let message):
            guard let channel = upgradeChannel else { return }
            try? writeAll(channel.fd, message.line)
            closeDescriptor(channel.fd) // go and abort are the last words
            upgradeChannel = nil
        case .tellPreviousMaster(let message):
            guard let channel = handoffChannel else { return }
            try? writeAll(channel.fd, message.line)
            if case .failed = message {
                closeDescriptor(channel.fd)
                handoffChannel = nil
            }
        case .takeOverFiles:
            if let handoff {
                do {
                    try PidFile(path: configuration.global.pidFile).write(replacing: handoff.previousMaster)
                } catch {
                    log.error("cannot write the pid file: \(error)")
                }
            }
            if let channel = handoffChannel {
                closeDescriptor(channel.fd)
                handoffChannel = nil
            }
            // The upgrade is decided: the old master's sets stay only for hosts of ours that map them.
            releaseData(dataSets.hostExited(SharedDataSets.previousMaster))
        case .giveUpFiles:
            // The control socket is the new master's now: stop taking commands on it.
            control?.closeListener()
            handParkedConnectionsOver()
        case .notifyService(let notice):
            notifyService(notice)
        case .exit(let status, let waiters):
            finish(status: status, answering: waiters)
        }
    }

    private func acquireListeners(_ pools: [PoolSettings]) {
        var opened: [ListenAddress] = []
        for pool in pools {
            for address in [pool.listen] + (pool.statusListen.map { [$0] } ?? []) {
                do {
                    let (_, isNew) = try listeners.acquire(address, backlog: pool.listenBacklog, permissions: pool.socketPermissions)
                    if isNew {
                        opened.append(address)
                        log.notice("pool \(pool.name) listening on \(listeners.describe(address))\(address == pool.statusListen ? " (status_listen)" : "")")
                    }
                } catch {
                    listeners.close(opened)
                    pending.append(.listenersFailed(reason: "pool \(pool.name): cannot listen on \(address): \(error)"))
                    return
                }
            }
        }
        pending.append(.listenersAcquired(opened: opened))
    }

    private func forkHost(_ spec: HostSpec) {
        let pool = spec.pool
        guard let listenFD = listeners.fd(for: pool.listen) else {
            pending.append(.hostForkFailed(spec, reason: "its socket \(pool.listen) is not open"))
            return
        }
        let statusListenFD = pool.statusListen.flatMap { listeners.fd(for: $0) }
        var reportChannel: ReportChannel?
        do {
            let parking = try listeners.parkingChannel(for: pool.listen)
            let poolCounters = try counters[pool.name] ?? PoolCounters()
            counters[pool.name] = poolCounters
            let board = try GenerationBoard(capacity: MasterCore.scaleLimit(pool))
            if spec.scaleTarget > 0 { board.setTarget(spec.scaleTarget) }
            let channel = try ReportChannel.make()
            reportChannel = channel
            let inherited = inheritedData(for: pool.name)
            let launch = HostLaunch(global: spec.global, pool: pool, generation: spec.generation, listenFD: listenFD,
                                    statusListenFD: statusListenFD, parkFD: parking.workersEnd, reportFD: channel.hostEnd, masterPID: getpid(),
                                    board: board, counters: poolCounters, loadsInBackground: spec.loadsInBackground, inheritedData: inherited)
            let signals = self.signals!
            let body = hostBody
            // Everything shared the host must not keep: other pools' counters, other hosts' boards.
            let foreign = boards.values.map(\.mapping) + counters.filter { $0.key != pool.name }.map(\.value.mapping)
            // Not the parking channel's master end: a worker reading it would take connections
            // workers parked. Nor the parked connections: the master's close must close them.
            // And the pool's keyed data, which the host may map instead of building it.
            let keep: Set<Int32> = Set([listenFD, statusListenFD ?? -1, parking.workersEnd, channel.hostEnd, LogDestination.fileDescriptor]
                                       + inherited.map(\.descriptor))
            let pid = try ChildProcess.spawn(newProcessGroup: true, prepareChild: {
                signals.reset()
                // A pool's workers can write nothing of another pool's (or generation's) scoreboard.
                for mapping in foreign { mapping.unmap() }
                // Only this pool's sockets, the report pipe and the log: other pools' sockets
                // must close when the master closes them, and a control client must see EOF.
                SelfInspection.closeDescriptors(except: keep)
            }, { body(launch) })
            closeDescriptor(channel.hostEnd)
            reports[pid] = (channel.masterEnd, LineBuffer())
            dataSets.handedOn(inherited.map(\.id), to: pid)
            boards[pid] = board
            pending.append(.hostForked(spec, pid: pid))
        } catch {
            reportChannel?.close()
            pending.append(.hostForkFailed(spec, reason: "\(error)"))
        }
    }

    /// nil when done, else why not.
    private func setPriority(_ pid: pid_t, _ change: BackgroundLoading.Action) -> String? {
        do {
            switch change {
            case .lower:
                do {
                    // Every thread: a preload may load in parallel.
                    try CPUPriority.set(.idle, ofAllThreadsOf: pid)
                } catch {
                    try? CPUPriority.set(.normal, ofAllThreadsOf: pid) // in case some threads were lowered
                    throw error
                }
            case .raise:
                try CPUPriority.set(.normal, ofAllThreadsOf: pid)
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Settings that change without a restart: the log level, format and file.
    private func applyGlobalSettings(old: GlobalSettings, new: GlobalSettings) {
        LogDestination.level = new.logLevel
        LogDestination.format = new.logFormat
        if new.errorLog != old.errorLog {
            do { try LogDestination.open(path: new.errorLog) } catch { log.error("cannot open error_log: \(error)") }
        }
        if new.pidFile != old.pidFile || new.controlSocket != old.controlSocket {
            log.warning("pid and control_socket changes take effect at the next restart")
        }
    }

    /// The loop is over: remove what is ours, then tell `forklift stop` it is done.
    private func finish(status: Int32, answering waiters: [MasterCore.ClientID]) {
        if core.ownsFiles {
            closeParkedConnections()
            listeners.close(allBut: [])
            PidFile(path: configuration.global.pidFile).remove()
        } else {
            closeParkedConnections() // none, unless the new master could not take them
            listeners.closeDescriptors() // the files belong to the other master
        }
        for waiter in waiters { control?.answer(waiter, ok: status == 0, "stopped, exit status \(status)") }
        if core.ownsFiles { control?.close() } else { control?.closeListener() }
        exitStatus = status
    }
}
