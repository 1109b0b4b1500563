import ForkliftJSON
import ForkliftConfig
import ForkliftIPC
import ForkliftStatus
import ForkliftSystem
import Glibc

/// `forklift status`: what the core knows of every host, and what each pool's scoreboard
/// says. Nothing here reads /proc: memory figures are the hosts' last samples.
extension Master {
    func statusAnswer(_ query: StatusQuery) -> String {
        let now = MonotonicInstant.now()
        let hosts = core.hosts.values.sorted { ($0.pool.name, $0.generation) < ($1.pool.name, $1.generation) }
        let pools = poolStatuses(now: now)
        if query.json {
            let generations = hosts.map { host in
                "{\"pool\":\(JSON.string(host.pool.name)),\"generation\":\(host.generation),\"role\":\(JSON.string(roleName(host))),\"pid\":\(host.pid),\"summary\":\(JSON.string(host.summary ?? ""))}"
            }
            let poolObjects = pools.map { StatusPage.render($0, format: .json, full: query.full) }
            let data = dataSetStatuses().map { set in
                "{\"pool\":\(JSON.string(set.pool)),\"plugin\":\(JSON.string(set.instance)),\"key\":\(JSON.string(set.key)),\"bytes\":\(set.bytes),\"built_by\":\(set.builtBy),\"generations\":[\(set.generations.map(String.init).joined(separator: ","))]}"
            }
            return "{\"master\":{\"pid\":\(getpid()),\"phase\":\(JSON.string("\(core.phase)"))},\"generations\":[\(generations.joined(separator: ","))],\"pools\":[\(poolObjects.joined(separator: ","))],\"shared_data\":[\(data.joined(separator: ","))]}"
        }
        var lines = hosts.map { host in
            "pool \(host.pool.name) gen \(host.generation) \(roleName(host)) pid \(host.pid)" + (host.summary.map { " \($0)" } ?? "")
                + " " + memorySummary(host.pid)
        }
        if lines.isEmpty { lines = ["no hosts"] }
        for set in dataSetStatuses() {
            lines.append("shared data pool \(set.pool) plugin \(set.instance) key \(set.key) \(Formatting.mebibytes(set.bytes)) built by gen \(set.builtBy), used by gen \(set.generations.map(String.init).joined(separator: ","))")
        }
        for pool in pools {
            lines.append("")
            lines.append(StatusPage.render(pool, format: .text, full: query.full).trimmingSuffix("\n"))
        }
        return lines.joined(separator: "\n")
    }

    /// The status of every pool, from its live host's board (or the newest one serving).
    func poolStatuses(now: MonotonicInstant) -> [PoolStatus] {
        configuration.pools.compactMap { pool in
            // The live host's board; a replacement's only while nothing of the pool is live.
            let hosts = core.hosts.values.filter { $0.pool.name == pool.name && $0.covers }
            let serving = hosts.filter { $0.role == .live }.max { $0.generation < $1.generation } ?? hosts.max { $0.generation < $1.generation }
            guard let host = serving, let board = boards[host.pid], let poolCounters = counters[pool.name] else { return nil }
            let snapshot = BoardReader.read(board, now: now)
            return PoolStatus(pool: pool.name, processManager: pool.processManager.rawValue, generation: host.generation,
                              role: roleName(host), counters: poolCounters.read(), board: snapshot,
                              maxChildren: snapshot.hostState?.workerTarget ?? pool.maxChildren,
                              slowlogTimeout: pool.requestSlowlogTimeout, now: now)
        }
    }

    /// Each keyed data set the master keeps, and the generations whose hosts use it.
    func dataSetStatuses() -> [(pool: String, instance: String, key: String, bytes: Int, builtBy: Int, generations: [Int])] {
        dataSets.entries.values.sorted { $0.id < $1.id }.map { entry in
            (entry.pool, entry.identity.instance, entry.identity.key, entry.placement.size, entry.builtBy,
             Set(entry.users.compactMap { core.hosts[$0]?.generation }).sorted())
        }
    }

    func roleName(_ host: HostProcess) -> String {
        switch host.role {
        case .candidate: host.backgroundLoading?.isIdle == true ? "candidate (loading at idle CPU priority)" : "candidate"
        case .replacement: "starting"
        case .live: "live"
        case .draining: "draining"
        }
    }

    /// "memory: Pss 93.1 MiB in all, Private_Dirty at most 0.4 MiB per worker (4 workers)",
    /// from the host's last sample in its board.
    func memorySummary(_ pid: pid_t) -> String {
        guard let board = boards[pid] else { return "memory: not measured" }
        let snapshot = BoardReader.read(board)
        let samples = snapshot.workers.compactMap(\.memory)
        guard let host = snapshot.hostMemory else { return "memory: not measured yet (\(snapshot.workers.count) workers)" }
        let total = samples.reduce(host.pssKB) { $0 + $1.pssKB } * 1024
        let mostPrivate = (samples.map(\.privateDirtyKB).max() ?? 0) * 1024
        return "memory: Pss \(Formatting.mebibytes(total)) in all, Private_Dirty at most \(Formatting.mebibytes(mostPrivate)) per worker (\(samples.count) workers)"
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
