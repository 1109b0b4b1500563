import ForkliftSystem

/// Users and groups as the configuration names them (`listen_owner`, `listen_group`, `user`,
/// `group`): a name in the user or group database, or a number. Looked up when the files are
/// read, so that a missing one is an error naming its key before anything is started.
enum AccountLookup {
    /// `entry`: the user database's entry, by name, or by number when the number has one.
    struct User {
        let id: UInt32
        let entry: Accounts.User?
        let givenAsNumber: Bool
    }

    static func user(_ text: String, key: String, _ table: TableReader) throws(ConfigurationError) -> User {
        if let id = accountNumber(text) { return User(id: id, entry: Accounts.user(id: id), givenAsNumber: true) }
        guard let entry = Accounts.user(named: text) else {
            throw table.error(key, "there is no user \"\(text)\" on this machine (a user name, or a number)")
        }
        return User(id: entry.id, entry: entry, givenAsNumber: false)
    }

    static func group(_ text: String, key: String, _ table: TableReader) throws(ConfigurationError) -> UInt32 {
        if let id = accountNumber(text) { return id }
        guard let id = Accounts.groupID(named: text) else {
            throw table.error(key, "there is no group \"\(text)\" on this machine (a group name, or a number)")
        }
        return id
    }
}

/// A user or group given as a number; nil for anything else, and for (id_t)-1, which the
/// system calls read as "leave it".
func accountNumber(_ text: String) -> UInt32? {
    guard !text.isEmpty, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
    return UInt32(text).flatMap { $0 == UInt32.max ? nil : $0 }
}
