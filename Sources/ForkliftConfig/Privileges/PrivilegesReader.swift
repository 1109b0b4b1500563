import ForkliftSystem
import Foundation

/// The keys of `ProcessPrivileges`, checked as PHP-FPM checks them (`fpm_conf.c`,
/// `fpm_unix.c`): users and groups are looked up now, and the directories must exist, so
/// that `forklift check` and a reload refuse a mistake before any process is forked.
enum PrivilegesReader {
    static let keys = ["user", "group", "chroot", "chdir", "clear_env", "env", "rlimit_files", "rlimit_core", "process_priority", "process_scheduling"]

    static func read(_ table: TableReader, environment: [String: String]) throws(ConfigurationError) -> ProcessPrivileges {
        var privileges = ProcessPrivileges()
        try readAccounts(table, into: &privileges)
        if let root = try table.string("chroot") {
            guard root.hasPrefix("/") else { throw table.error("chroot", "expected an absolute path, got \"\(root)\"") }
            let path = URL(fileURLWithPath: root).standardizedFileURL.path
            guard isDirectory(path) else { throw table.error("chroot", "\(path) is not a directory") }
            privileges.chroot = path
        }
        if let directory = try table.string("chdir") {
            guard directory.hasPrefix("/") else { throw table.error("chdir", "expected an absolute path, got \"\(directory)\"") }
            // Inside the chroot, if there is one: that is where the host changes into it.
            let outside = (privileges.chroot ?? "") + directory
            guard isDirectory(outside) else {
                throw table.error("chdir", "\(outside) is not a directory" + (privileges.chroot == nil ? "" : " (chdir is a path inside the chroot)"))
            }
            privileges.chdir = URL(fileURLWithPath: directory).standardizedFileURL.path
        }
        privileges.clearEnvironment = try table.bool("clear_env") ?? true
        privileges.environment = try readEnvironment(table, master: environment)
        if let files = try table.integer("rlimit_files", atLeast: 1, atMost: 1 << 30) { privileges.openFilesLimit = UInt64(files) }
        privileges.coreLimit = try readCoreLimit(table)
        if let priority = try table.integer("process_priority", atLeast: -19, atMost: 20) { privileges.priority = Int32(priority) }
        if let scheduling = try table.string("process_scheduling") {
            guard let value = WorkerScheduling(rawValue: scheduling) else {
                throw table.error("process_scheduling", "expected \"batch-when-idle\", \"normal\" or \"batch\", got \"\(scheduling)\"")
            }
            privileges.scheduling = value
        }
        return privileges
    }

    /// `user` by name or number; `group` defaults to the user's primary group.
    private static func readAccounts(_ table: TableReader, into privileges: inout ProcessPrivileges) throws(ConfigurationError) {
        let userText = try table.string("user")
        let groupText = try table.string("group")
        var primary: UInt32?
        var userName: String?
        if let userText {
            let user = try AccountLookup.user(userText, key: "user", table)
            privileges.user = .init(name: user.entry?.name ?? userText, id: user.id)
            primary = user.entry?.groupID
            userName = user.entry?.name
        }
        if let groupText {
            let id = try AccountLookup.group(groupText, key: "group", table)
            privileges.group = .init(name: accountNumber(groupText) == nil ? groupText : Accounts.describeGroup(id), id: id)
        } else if let primary {
            privileges.group = .init(name: Accounts.describeGroup(primary), id: primary)
        } else if let user = privileges.user {
            throw table.error("group", "is required: user \(user.name) has no entry in the user database, so no primary group comes with it")
        } else {
            return
        }
        guard privileges.user != nil else {
            throw table.error("group", "needs user (PHP-FPM's rule: the group goes with a user)")
        }
        let gid = privileges.group!.id
        privileges.supplementaryGroups = userName.map { Accounts.groups(ofUser: $0, primary: gid) } ?? [gid]
    }

    /// `env = { NAME = "value" }` (or `[pool.NAME.env]`): strings, and `$NAME` for the
    /// master's own variable (PHP-FPM's `env[TMP] = $TMP`), which must be set.
    private static func readEnvironment(_ table: TableReader, master: [String: String]) throws(ConfigurationError) -> [EnvironmentVariable] {
        guard let entries = try table.subtable("env") else { return [] }
        var variables: [EnvironmentVariable] = []
        for name in entries.keys.sorted() {
            let key = "env.\(name)"
            guard !name.isEmpty, !name.contains("="), !name.utf8.contains(0) else {
                throw table.error(key, "is not a name an environment variable can have")
            }
            let value = entries[name]!
            guard var text = value.string ?? value.int.map({ "\($0)" }) else {
                throw table.error(key, "expected a string, got the \(value.type) \(ValueText.toml(value))")
            }
            if text.hasPrefix("$"), text.count > 1 {
                let variable = String(text.dropFirst())
                guard let inherited = master[variable] else {
                    throw table.error(key, "refers to $\(variable), which is not set in forklift's environment")
                }
                text = inherited
            }
            guard !text.utf8.contains(0) else { throw table.error(key, "must not contain a NUL character") }
            variables.append(EnvironmentVariable(name: name, value: text))
        }
        return variables
    }

    /// Bytes, a size with a unit ("1G"), or "unlimited".
    private static func readCoreLimit(_ table: TableReader) throws(ConfigurationError) -> ResourceLimit? {
        if (try? table.string("rlimit_core")) == "unlimited" { return .unlimited }
        do {
            return try table.size("rlimit_core").map { .bytes(UInt64($0)) }
        } catch {
            throw table.error("rlimit_core", "expected a size in bytes or \"unlimited\" (\(error.message))")
        }
    }

    private static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
