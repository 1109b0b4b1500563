import Glibc

/// Users and groups by name or number, through NSS (getpwnam_r and friends), for the sockets'
/// owner and group (`listen_owner`, `listen_group`) and for log lines that name them.
public enum Accounts {
    public struct User: Equatable, Sendable {
        public let name: String
        public let id: uid_t
        /// The user's primary group: a socket's group when only its owner is configured.
        public let groupID: gid_t
    }

    /// The user named `name`; nil if there is none.
    public static func user(named name: String) -> User? {
        var entry = passwd()
        return lookup({ buffer, size, result in getpwnam_r(name, &entry, buffer, size, &result) }) { User($0) }
    }

    public static func user(id: uid_t) -> User? {
        var entry = passwd()
        return lookup({ buffer, size, result in getpwuid_r(id, &entry, buffer, size, &result) }) { User($0) }
    }

    /// The number of the group named `name`; nil if there is none.
    public static func groupID(named name: String) -> gid_t? {
        var entry = group()
        return lookup({ buffer, size, result in getgrnam_r(name, &entry, buffer, size, &result) }) { $0.gr_gid }
    }

    public static func groupName(id: gid_t) -> String? {
        var entry = group()
        return lookup({ buffer, size, result in getgrgid_r(id, &entry, buffer, size, &result) }) { String(cString: $0.gr_name) }
    }

    /// Every group `user` is in by the group database, `primary` included (getgrouplist):
    /// what initgroups would set, read in the master, where the database is reachable.
    public static func groups(ofUser user: String, primary: gid_t) -> [gid_t] {
        var count: Int32 = 64
        while count <= 1 << 16 {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var found = count
            if getgrouplist(user, primary, &groups, &found) >= 0 {
                return Array(groups.prefix(Int(found)))
            }
            count = max(found, count * 2) // too small: `found` says how many there are
        }
        return [primary]
    }

    /// "www-data", or the number when no user has it.
    public static func describeUser(_ id: uid_t) -> String { user(id: id)?.name ?? "\(id)" }
    public static func describeGroup(_ id: gid_t) -> String { groupName(id: id) ?? "\(id)" }

    /// Runs a `get*_r` call with a buffer that grows while it answers ERANGE, and reads the
    /// entry it found while the buffer its strings point into is still there.
    private static func lookup<Entry, Value>(_ call: (UnsafeMutablePointer<CChar>, Int, inout UnsafeMutablePointer<Entry>?) -> Int32,
                                             _ read: (Entry) -> Value) -> Value? {
        var size = 1024
        while size <= 1 << 20 {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            var result: UnsafeMutablePointer<Entry>?
            let status = call(buffer, size, &result)
            if status == ERANGE {
                size *= 4
                continue
            }
            guard status == 0, let found = result else { return nil }
            return read(found.pointee)
        }
        return nil
    }
}

private extension Accounts.User {
    init(_ entry: passwd) {
        self.init(name: String(cString: entry.pw_name), id: entry.pw_uid, groupID: entry.pw_gid)
    }
}
