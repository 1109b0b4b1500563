@testable import ForkliftConfig
import ForkliftSystem
import Foundation
import Testing

/// user, group, chroot, chdir, clear_env, env, rlimit_files, rlimit_core, process_priority,
/// process_scheduling:
/// what they become, the errors naming key and value, and the root rule.
@Suite struct PrivilegesConfigTests {
    static func pool(_ lines: String) -> String {
        minimalPool.replacingOccurrences(of: "max_children = 4", with: "max_children = 4\n\(lines)")
    }

    @Test func nothingSetChangesNothingButTheEnvironment() throws {
        let privileges = try #require(try parse(Self.pool("")).pools.first).privileges
        #expect(privileges.user == nil && privileges.group == nil && privileges.chroot == nil && privileges.chdir == nil)
        #expect(privileges.clearEnvironment, "PHP-FPM's clear_env default")
        #expect(privileges.openFilesLimit == nil && privileges.coreLimit == nil && privileges.priority == nil)
        #expect(privileges.scheduling == .batchWhenIdle, "SCHED_BATCH while waiting for a connection, normal while serving")
    }

    @Test(arguments: [("batch-when-idle", WorkerScheduling.batchWhenIdle), ("normal", .normal), ("batch", .batch)])
    func everySchedulingByName(name: String, expected: WorkerScheduling) throws {
        let privileges = try #require(try parse(Self.pool("process_scheduling = \"\(name)\"")).pools.first).privileges
        #expect(privileges.scheduling == expected)
    }

    /// A user by name brings its primary group and the groups the database lists for it.
    @Test func aUserBringsItsGroups() throws {
        let privileges = try #require(try parse(Self.pool("user = \"daemon\"")).pools.first).privileges
        #expect(privileges.user == .init(name: "daemon", id: 1) && privileges.group == .init(name: "daemon", id: 1))
        #expect(privileges.supplementaryGroups.contains(1))
        #expect(Set(privileges.supplementaryGroups) == Set(Accounts.groups(ofUser: "daemon", primary: 1)))
        let other = try #require(try parse(Self.pool("user = \"daemon\"\ngroup = \"nogroup\"")).pools.first).privileges
        #expect(other.group?.name == "nogroup" && other.group?.id == Accounts.groupID(named: "nogroup"))
    }

    @Test func limitsPriorityEnvironmentAndDirectories() throws {
        let lines = """
            rlimit_files = 4096
            rlimit_core = "unlimited"
            process_priority = -5
            process_scheduling = "batch"
            clear_env = false
            chroot = "/"
            chdir = "/tmp"
            env = { B = "2", A = "one", HOME_OF_MASTER = "$FORKLIFT_TEST_VARIABLE" }
            """
        setenv("FORKLIFT_TEST_VARIABLE", "from the master", 1)
        let privileges = try #require(try parse(Self.pool(lines)).pools.first).privileges
        #expect(privileges.openFilesLimit == 4096 && privileges.coreLimit == .unlimited && privileges.priority == -5)
        #expect(privileges.scheduling == .batch)
        #expect(!privileges.clearEnvironment && privileges.chroot == "/" && privileges.chdir == "/tmp")
        #expect(privileges.environment == [.init(name: "A", value: "one"), .init(name: "B", value: "2"),
                                           .init(name: "HOME_OF_MASTER", value: "from the master")])
        let bytes = try #require(try parse(Self.pool("rlimit_core = \"1G\"")).pools.first).privileges
        #expect(bytes.coreLimit == .bytes(1 << 30))
    }

    @Test(arguments: [
        ("user = \"no-such-user-forklift\"", "pool.www.user", "there is no user \"no-such-user-forklift\" on this machine"),
        ("user = \"daemon\"\ngroup = \"no-such-group-forklift\"", "pool.www.group", "there is no group \"no-such-group-forklift\""),
        ("group = \"daemon\"", "pool.www.group", "needs user"),
        ("user = \"54321\"", "pool.www.group", "user 54321 has no entry in the user database"),
        ("chroot = \"jail\"", "pool.www.chroot", "expected an absolute path, got \"jail\""),
        ("chroot = \"/no/such/jail\"", "pool.www.chroot", "/no/such/jail is not a directory"),
        ("chroot = \"/tmp\"\nchdir = \"/no-such-dir\"", "pool.www.chdir", "/tmp/no-such-dir is not a directory (chdir is a path inside the chroot)"),
        ("rlimit_files = 0", "pool.www.rlimit_files", "expected an integer between 1 and"),
        ("rlimit_core = \"lots\"", "pool.www.rlimit_core", "expected a size in bytes or \"unlimited\""),
        ("process_priority = -20", "pool.www.process_priority", "expected an integer between -19 and 20, got -20"),
        ("process_scheduling = \"fifo\"", "pool.www.process_scheduling", "expected \"batch-when-idle\", \"normal\" or \"batch\", got \"fifo\""),
        ("process_scheduling = 3", "pool.www.process_scheduling", "expected a string"),
        ("env = { PATH = [1] }", "pool.www.env.PATH", "expected a string"),
        ("env = { X = \"$FORKLIFT_NOT_SET_ANYWHERE\" }", "pool.www.env.X", "refers to $FORKLIFT_NOT_SET_ANYWHERE, which is not set"),
        ("clear_env = 3", "pool.www.clear_env", "expected true or false"),
    ])
    func badValuesNameTheKeyAndTheValue(line: String, key: String, message: String) throws {
        expectRefused(Self.pool(line), key: key, saying: message)
    }

    /// As root: a pool without a user, or with root as user or group, needs -R.
    @Test(arguments: [("", "pool.www.user"), ("user = \"root\"", "pool.www.user"), ("user = \"daemon\"\ngroup = \"root\"", "pool.www.group")])
    func rootNeedsTheFlag(lines: String, key: String) throws {
        let text = Self.pool(lines)
        let file = [("/etc/forklift/conf.d/10-www.toml", text)]
        let root = RootPolicy(effectiveUser: 0, allowRoot: false)
        do {
            _ = try ConfigurationLoader.parse(files: file, configurationDirectory: "/etc/forklift/conf.d", rootPolicy: root)
            Issue.record("accepted workers running as root")
        } catch {
            #expect(error.key == key && error.message.contains("--allow-to-run-as-root (-R)"), "\(error)")
        }
        for policy in [RootPolicy(effectiveUser: 0, allowRoot: true), RootPolicy(effectiveUser: 1000, allowRoot: false)] {
            _ = try ConfigurationLoader.parse(files: file, configurationDirectory: "/etc/forklift/conf.d", rootPolicy: policy)
        }
        _ = try ConfigurationLoader.parse(files: [("/etc/forklift/conf.d/10-www.toml", Self.pool("user = \"daemon\""))],
                                          configurationDirectory: "/etc/forklift/conf.d", rootPolicy: root)
    }
}
