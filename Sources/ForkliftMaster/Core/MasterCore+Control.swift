import ForkliftConfig
import ForkliftSystem
import Glibc

/// Control commands (`forklift reload`, `stop`, `status`, `scale`, `dump`, `upgrade`), and
/// scaling by signal (TTIN, TTOU).
extension MasterCore {
    mutating func handleControl(_ client: ClientID, _ request: ControlRequest, now: MonotonicInstant) -> [Action] {
        switch request {
        case .reload:
            return [.log(.notice, "reload requested through the control socket")] + requestReload(waiter: client)
        case .stop:
            stopWaiters.append(client)
            return [.log(.notice, "stop requested through the control socket")] + beginStop(now: now)
        case .status(let query):
            return [.answerStatus(client, query)]
        case .upgrade:
            return [.log(.notice, "binary upgrade requested through the control socket")] + beginUpgrade(waiter: client, now: now)
        case .dump:
            return [.dump(dumpLines(now: now)), .answer(client, ok: true, "state dumped to the log")]
        case .scale(let pool, let workers):
            switch scale(pool, to: workers, cause: "forklift scale") {
            case .success(let (message, actions)): return actions + [.answer(client, ok: true, message)]
            case .failure(let error): return [.answer(client, ok: false, error.message)]
            }
        case .unknown(let text):
            return [.answer(client, ok: false, "unknown command \"\(text)\"; \(ControlRequest.usage)")]
        }
    }

    struct ScaleError: Error { let message: String }

    /// The most workers (static) or the ceiling (dynamic, ondemand) a pool may be scaled to:
    /// its scoreboard has room for twice `max_children`.
    static func scaleLimit(_ pool: PoolSettings) -> Int { pool.maxChildren * 2 }

    /// What the pool runs now: the count set at run time, or the configuration's.
    func currentScale(_ pool: PoolSettings) -> Int { scaleTargets[pool.name] ?? pool.maxChildren }

    mutating func scale(_ poolName: String, to workers: Int, cause: String) -> Result<(String, [Action]), ScaleError> {
        guard phase == .running else { return .failure(ScaleError(message: "forklift is not running normally")) }
        guard let pool = configuration.pools.first(where: { $0.name == poolName }) else {
            let names = configuration.pools.map(\.name).joined(separator: ", ")
            return .failure(ScaleError(message: "no pool \"\(poolName)\" (the pools are: \(names))"))
        }
        let limit = Self.scaleLimit(pool)
        guard workers >= 1, workers <= limit else {
            return .failure(ScaleError(message: "pool \(poolName): expected 1 to \(limit) workers (twice max_children), got \(workers)"))
        }
        let what = pool.processManager == .static ? "workers" : "as max_children"
        let before = currentScale(pool)
        scaleTargets[poolName] = workers
        // Not a reload's candidates: the commit starts again from the configuration.
        let targets = hosts.values.filter { $0.pool.name == poolName && $0.covers }.map(\.pid).sorted()
        let message = "pool \(poolName): \(before) -> \(workers) \(what) (\(cause)); until the next reload"
        return .success((message, [.log(.notice, message)] + targets.map { .setScaleTarget($0, workers) }))
    }

    /// TTIN and TTOU: one more or one fewer in every pool, within 1 and twice max_children.
    mutating func scaleEveryPool(by delta: Int, cause: String) -> [Action] {
        var actions: [Action] = []
        for pool in configuration.pools {
            let wanted = currentScale(pool) + delta
            guard wanted >= 1, wanted <= Self.scaleLimit(pool) else {
                actions.append(.log(.warning, "\(cause): pool \(pool.name) stays at \(currentScale(pool)) (the limits are 1 and \(Self.scaleLimit(pool)))"))
                continue
            }
            switch scale(pool.name, to: wanted, cause: cause) {
            case .success(let (_, more)): actions += more
            case .failure(let error): actions.append(.log(.warning, "\(cause): \(error.message)"))
            }
        }
        return actions
    }

    /// What a state dump says about the master.
    func dumpLines(now: MonotonicInstant) -> [String] {
        var lines = ["master: phase \(phase), \(ownsFiles ? "owns" : "does not own") its files, \(hosts.count) hosts, generations \(generations.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"]
        if let transaction {
            lines.append("master: reload in flight for \(Formatting.oneDecimal(transaction.started.seconds(until: now))) s, candidates \(transaction.candidates.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))\(transaction.isInitial ? " (first start)" : "")")
        }
        if let switchInFlight { lines.append("master: switching generations for \(Formatting.milliseconds(from: switchInFlight.started, to: now)) ms, retiring \(switchInFlight.retiring), promoting \(switchInFlight.promoting)") }
        if reloadPending { lines.append("master: another reload is pending") }
        if let upgrade { lines.append("master: upgrade in flight, new master \(upgrade.pid.map(String.init) ?? "forking")\(upgrade.switching ? ", handing over" : "")") }
        for host in hosts.values.sorted(by: { ($0.pool.name, $0.generation) < ($1.pool.name, $1.generation) }) {
            lines.append("master: \(host.label): \(host.role), started \(Formatting.oneDecimal(host.started.seconds(until: now))) s ago\(host.isReady ? ", ready" : "")\(host.failure.map { ", failed: \($0)" } ?? "")")
        }
        for (pool, target) in scaleTargets.sorted(by: { $0.key < $1.key }) { lines.append("master: pool \(pool) scaled to \(target)") }
        for timer in timers().sorted(by: { $0.at < $1.at }) {
            lines.append("master: timer \(timer.timer) in \(Formatting.oneDecimal(now.seconds(until: timer.at))) s")
        }
        return lines
    }
}
