import CForkliftSys
import ForkliftConfig
import ForkliftSystem
import Glibc

/// A pool's `ProcessPrivileges`, applied by its host right after the fork from the master and
/// before it opens a plugin file, in the order PHP-FPM's `fpm_unix_init_child` uses: limits and
/// priority first (raising them may take root), then groups, chroot, user, working directory
/// and environment. Whatever fails stops the host with the step and the reason; nothing of a
/// pool's plugins runs with more than it was given.
enum PrivilegeDrop {
    /// RLIM_INFINITY, which Swift imports as a literal -1 it cannot store in rlim_t.
    private static let unlimited = rlim_t.max
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Returns notices for the log (a `user` that a master not running as root cannot apply).
    /// `creatingLogFiles`: false for `forklift check`, which must leave no file behind.
    static func apply(_ privileges: ProcessPrivileges, pool: PoolSettings, creatingLogFiles: Bool = true) throws(Failure) -> [String] {
        var notices: [String] = []
        if let files = privileges.openFilesLimit { try setLimit(RLIMIT_NOFILE, rlim_t(files), key: "rlimit_files") }
        switch privileges.coreLimit {
        case .unlimited: try setLimit(RLIMIT_CORE, unlimited, key: "rlimit_core")
        case .bytes(let bytes): try setLimit(RLIMIT_CORE, rlim_t(bytes), key: "rlimit_core")
        case nil: break
        }
        if let priority = privileges.priority {
            errno = 0
            guard setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, priority) == 0 else {
                throw Failure(description: "process_priority = \(priority): setpriority: \(String(cString: strerror(errno)))"
                                  + (errno == EACCES || errno == EPERM ? " (a value below 0 takes root)" : ""))
            }
        }
        let root = geteuid() == 0
        let changesUser = root && privileges.changesUser
        if privileges.changesUser && !root {
            let user = privileges.user.map { "user \($0.name)" } ?? "group \(privileges.group!.name)"
            if privileges.user.map({ $0.id != geteuid() }) ?? true {
                notices.append("pool \(pool.name): \(user) is ignored: forklift runs as \(Accounts.describeUser(geteuid())), not root, and cannot change users")
            }
        }
        if changesUser {
            errno = 0
            let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) // process_priority's, set above, or the master's
            try allowLeavingIdlePriority(priority: errno == 0 ? nice : 0)
            let groups = privileges.supplementaryGroups.isEmpty ? [privileges.group!.id] : privileges.supplementaryGroups
            guard groups.withUnsafeBufferPointer({ forklift_set_groups($0.count, $0.baseAddress) }) == 0 else {
                throw failure("setgroups(\(groups.map(String.init).joined(separator: ",")))")
            }
            guard forklift_set_all_gids(privileges.group!.id) == 0 else { throw failure("setresgid(\(privileges.group!.id)) for group \(privileges.group!.name)") }
        }
        if let directory = privileges.chroot {
            guard Glibc.chroot(directory) == 0 else { throw failure("chroot(\(directory))" + (root ? "" : ": it takes root")) }
            guard Glibc.chdir("/") == 0 else { throw failure("chdir(/) in the chroot \(directory)") }
        }
        if changesUser {
            // Still root, and inside the chroot if there is one: the paths are the pool's.
            if creatingLogFiles { try createLogFiles(of: pool, privileges: privileges) }
            let user = privileges.user!
            // So that setresuid clears the capabilities (unless SECBIT_KEEP_CAPS is locked on).
            _ = forklift_clear_keep_capabilities()
            guard forklift_set_all_uids(user.id) == 0 else { throw failure("setresuid(\(user.id)) for user \(user.name)") }
            // A dropped root must not be able to come back: not by setuid, not through
            // capabilities kept across the change (securebits a supervisor may have set).
            if user.id != 0 && (setuid(0) == 0 || seteuid(0) == 0) {
                throw Failure(description: "user \(user.name): root privileges could be regained after setresuid; refusing to load plugins")
            }
            if user.id != 0 && forklift_keeps_capabilities() != 0 {
                throw Failure(description: "user \(user.name): capabilities are left after setresuid (securebits keep them, or they cannot be read); refusing to load plugins")
            }
            // A change of user clears both: the host must still read its workers' /proc files
            // (memory, stacks), and the master's death must still stop it.
            _ = forklift_set_dumpable(1)
            ChildProcess.setParentDeathSignal(.term)
        }
        if let directory = privileges.chdir {
            guard Glibc.chdir(directory) == 0 else { throw failure("chdir(\(directory))") }
        }
        if privileges.clearEnvironment { clearenv() }
        for variable in privileges.environment {
            guard setenv(variable.name, variable.value, 1) == 0 else { throw failure("setenv(\(variable.name))") }
        }
        return notices
    }

    private static func setLimit(_ resource: __rlimit_resource, _ value: rlim_t, key: String) throws(Failure) {
        var limit = rlimit(rlim_cur: value, rlim_max: value)
        guard setrlimit(__rlimit_resource_t(resource.rawValue), &limit) == 0 else {
            throw Failure(description: "\(key) = \(value == unlimited ? "unlimited" : "\(value)"): setrlimit: \(String(cString: strerror(errno)))"
                              + (errno == EPERM ? (key == "rlimit_files" ? " (raising a hard limit takes root, and no limit may exceed fs.nr_open)" : " (raising a hard limit takes root)") : ""))
        }
    }

    /// The master may lower a reload's host to idle CPU priority while it loads
    /// (background_loading), and the host and the workers it forks meanwhile raise themselves
    /// back. Leaving SCHED_IDLE is, to Linux, lowering the nice value from 20 to the process's
    /// own, which a user other than root may do only within RLIMIT_NICE: raise its soft limit
    /// that far while still root. Beyond the hard limit it cannot (that takes
    /// CAP_SYS_RESOURCE); the master then never lowers such a pool (`BackgroundLoading.allowed`).
    private static func allowLeavingIdlePriority(priority: Int32) throws(Failure) {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(__RLIMIT_NICE.rawValue), &limit) == 0 else { throw failure("getrlimit(RLIMIT_NICE)") }
        let needed = rlim_t(max(1, 20 - max(-20, min(19, priority))))
        guard limit.rlim_cur < needed, limit.rlim_max >= needed else { return }
        limit.rlim_cur = needed
        guard setrlimit(__rlimit_resource_t(__RLIMIT_NICE.rawValue), &limit) == 0 else { throw failure("setrlimit(RLIMIT_NICE, \(needed))") }
    }

    /// The access log and the slow log are opened by path by the pool's processes (and
    /// opened again after a rotation), so they must be writable by its user: the host, still
    /// root, creates the ones that do not exist yet for it, as logrotate's `create` would.
    /// Only where the pool's user cannot have prepared the way: every directory above the file
    /// must be a real directory (no symbolic link) owned by root and writable by root alone
    /// (or sticky), and the file itself is created, never followed. Elsewhere the pool's user,
    /// who can write there, creates its log itself.
    private static func createLogFiles(of pool: PoolSettings, privileges: ProcessPrivileges) throws(Failure) {
        for path in [pool.accessLog, pool.slowlog].compactMap({ $0 }) where rootOwnsTheWay(to: path) {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o640)
            guard fd >= 0 else { continue } // it exists: whoever made it decides who may write it
            defer { closeDescriptor(fd) }
            guard fchown(fd, privileges.user!.id, privileges.group!.id) == 0 else { throw failure("chown(\(path))") }
        }
    }

    private static func rootOwnsTheWay(to path: String) -> Bool {
        PluginFileTrust.directories(above: path).allSatisfy { directory in
            var status = stat()
            guard lstat(directory, &status) == 0, status.st_mode & S_IFMT == S_IFDIR, status.st_uid == 0 else { return false }
            return status.st_mode & 0o022 == 0 || status.st_mode & UInt32(S_ISVTX) != 0
        }
    }

    private static func failure(_ step: String) -> Failure {
        Failure(description: "\(step): \(String(cString: strerror(errno)))")
    }
}
