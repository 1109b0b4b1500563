import ForkliftSystem

/// The keys that say who may connect to a pool: `listen_owner`, `listen_group` and
/// `listen_mode` for its unix sockets, `listen_allowed_clients` for a TCP listener. Users and
/// groups are looked up now, so that `forklift check` and a reload refuse one that does not
/// exist, before any socket is touched.
enum ListenOptionsReader {
    static let keys = ["listen_owner", "listen_group", "listen_mode", "listen_allowed_clients"]

    struct Options {
        var permissions = SocketPermissions()
        /// Which permission keys were set, for the error when the pool listens on TCP.
        var permissionKeys: [String] = []
        var allowedClients: AllowedClients?
    }

    static func read(_ table: TableReader) throws(ConfigurationError) -> Options {
        var options = Options()
        if let owner = try table.string("listen_owner") {
            // As PHP-FPM: a user given by name brings its primary group, unless listen_group says otherwise.
            let user = try AccountLookup.user(owner, key: "listen_owner", table)
            options.permissions.owner = .init(name: owner, id: user.id)
            if !user.givenAsNumber, let primary = user.entry?.groupID {
                options.permissions.group = .init(name: Accounts.groupName(id: primary) ?? "\(primary)", id: primary)
            }
            options.permissionKeys.append("listen_owner")
        }
        if let group = try table.string("listen_group") {
            options.permissions.group = .init(name: group, id: try AccountLookup.group(group, key: "listen_group", table))
            options.permissionKeys.append("listen_group")
        }
        if let text = try modeText(table) {
            options.permissions.mode = try mode(text, table)
            options.permissionKeys.append("listen_mode")
        }
        if let entries = try table.stringList("listen_allowed_clients") {
            do {
                options.allowedClients = try AllowedClients(parsing: entries)
            } catch {
                throw table.error("listen_allowed_clients", error.message)
            }
        }
        return options
    }

    /// In quotes: unquoted, TOML reads 660 as decimal and refuses 0660.
    private static func modeText(_ table: TableReader) throws(ConfigurationError) -> String? {
        do {
            return try table.string("listen_mode")
        } catch {
            throw table.error("listen_mode", "expected an octal mode in quotes, such as \"0660\" (\(error.message))")
        }
    }

    /// "0660" or "660", octal as chmod takes it: permission bits only (no setuid, setgid or sticky).
    private static func mode(_ text: String, _ table: TableReader) throws(ConfigurationError) -> UInt32 {
        guard !text.isEmpty, text.count <= 4, let mode = UInt32(text, radix: 8), mode <= 0o777,
              text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }) else {
            throw table.error("listen_mode", "expected an octal mode from \"0000\" to \"0777\" such as \"0660\", got \"\(text)\"")
        }
        return mode
    }
}
