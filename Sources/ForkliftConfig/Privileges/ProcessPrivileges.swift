/// Who a pool's host and workers run as, and what they may use: PHP-FPM's `user`, `group`,
/// `chroot`, `chdir`, `env[NAME]` and `clear_env`, `rlimit_files`, `rlimit_core` and
/// `process_priority`. The host applies them after the fork from the master and before it
/// loads a plugin, so no plugin code ever runs with the master's privileges; each worker
/// applies `process_scheduling` to itself as it starts.
public struct ProcessPrivileges: Equatable, Sendable {
    /// nil: the user the master runs as (root refuses that unless `--allow-to-run-as-root`).
    public var user: SocketPermissions.Account?
    /// nil with a user: the user's primary group.
    public var group: SocketPermissions.Account?
    /// The user's groups from the group database (`getgrouplist`), read with the
    /// configuration; the host cannot read them once it is in a chroot.
    public var supplementaryGroups: [UInt32] = []
    /// A directory the host changes its root to; plugin paths are then paths inside it.
    public var chroot: String?
    /// The working directory; nil: `/` in a chroot, else the master's.
    public var chdir: String?
    /// The workers start with no environment but `environment` (PHP-FPM's default): what the
    /// master was started with is nobody's business in a plugin.
    public var clearEnvironment = true
    /// `env = { NAME = "value" }`, sorted by name; a value `$NAME` is the master's variable.
    public var environment: [EnvironmentVariable] = []
    /// RLIMIT_NOFILE, soft and hard; nil: inherited.
    public var openFilesLimit: UInt64?
    /// RLIMIT_CORE, soft and hard; nil: inherited.
    public var coreLimit: ResourceLimit?
    /// The nice value, -19 (first) to 20 (last); nil: inherited.
    public var priority: Int32?
    /// `process_scheduling`: the workers' CPU scheduling class (each worker sets its own as it
    /// starts, before worker init, so threads a plugin starts have it too).
    public var scheduling: WorkerScheduling = .batchWhenIdle

    public init() {}

    public var changesUser: Bool { user != nil || group != nil }
}

/// How the kernel schedules a pool's workers. Under SCHED_BATCH a thread gets the same share of
/// the CPU, but when something wakes it, it does not preempt what runs on its core: it runs once
/// that blocks or has used its time slice (a few ms at most). What runs there is often the web
/// server, which has just connected and is about to send the request.
public enum WorkerScheduling: String, Equatable, Sendable {
    /// SCHED_BATCH while the worker is idle, waiting for a connection, so that the connection
    /// wakes it without taking the core from the web server between its connect and its send;
    /// SCHED_OTHER from the moment it is awake, for the request and everything it waits on
    /// (its body, a kept connection's next request). The default.
    case batchWhenIdle = "batch-when-idle"
    /// The class the worker inherits from forklift (SCHED_OTHER unless it was started otherwise).
    case normal
    /// SCHED_BATCH all the time.
    case batch
}

public struct EnvironmentVariable: Equatable, Sendable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A resource limit as `rlimit_core` takes it.
public enum ResourceLimit: Equatable, Sendable {
    case unlimited
    case bytes(UInt64)
}
