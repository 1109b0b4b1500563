@testable import ForkliftConfig
import Testing

/// listen_owner, listen_group and listen_mode: what they become, and the errors that name the
/// key and the value.
@Suite struct ListenOptionsTests {
    static func pool(listen: String = "/run/forklift/www.sock", _ lines: String) -> String {
        minimalPool.replacingOccurrences(of: "listen = \"127.0.0.1:9000\"", with: "listen = \"\(listen)\"\n\(lines)")
    }

    @Test func aUnixSocketIs0660OwnedByTheMasterUnlessSaidOtherwise() throws {
        let pool = try #require(try parse(Self.pool("")).pools.first)
        #expect(pool.socketPermissions == SocketPermissions(owner: nil, group: nil, mode: 0o660))
    }

    /// As PHP-FPM: a user by name brings its primary group; listen_group overrides it; numbers work too.
    @Test func ownerGroupAndModeAreLookedUp() throws {
        let named = try #require(try parse(Self.pool("listen_owner = \"daemon\"\nlisten_mode = \"0600\"")).pools.first)
        #expect(named.socketPermissions == SocketPermissions(owner: .init(name: "daemon", id: 1), group: .init(name: "daemon", id: 1), mode: 0o600))
        let both = try #require(try parse(Self.pool("listen_owner = \"daemon\"\nlisten_group = \"root\"")).pools.first)
        #expect(both.socketPermissions.group == .init(name: "root", id: 0))
        let numbers = try #require(try parse(Self.pool("listen_owner = \"4321\"\nlisten_group = \"8765\"\nlisten_mode = \"666\"")).pools.first)
        #expect(numbers.socketPermissions == SocketPermissions(owner: .init(name: "4321", id: 4321), group: .init(name: "8765", id: 8765), mode: 0o666))
    }

    @Test(arguments: [
        ("listen_owner = \"no-such-user-forklift\"", "pool.www.listen_owner", "there is no user \"no-such-user-forklift\" on this machine"),
        ("listen_group = \"no-such-group-forklift\"", "pool.www.listen_group", "there is no group \"no-such-group-forklift\" on this machine"),
        ("listen_mode = \"0680\"", "pool.www.listen_mode", "expected an octal mode from \"0000\" to \"0777\" such as \"0660\", got \"0680\""),
        ("listen_mode = \"1777\"", "pool.www.listen_mode", "got \"1777\""),
        ("listen_mode = \"rw-rw----\"", "pool.www.listen_mode", "got \"rw-rw----\""),
        ("listen_mode = \"\"", "pool.www.listen_mode", "got \"\""),
        ("listen_mode = 660", "pool.www.listen_mode", "expected an octal mode in quotes, such as \"0660\""),
        ("listen_owner = \"4294967295\"", "pool.www.listen_owner", "there is no user \"4294967295\""),
    ])
    func badValuesNameTheKeyAndTheValue(line: String, key: String, message: String) throws {
        expectRefused(Self.pool(line), key: key, saying: message)
    }

    @Test func permissionsOnAPoolWithoutAUnixSocketAreAnError() throws {
        expectRefused(Self.pool(listen: "127.0.0.1:9000", "listen_mode = \"0600\""), key: "pool.www.listen_mode",
                      saying: "applies to unix sockets, and pool \"www\" has none (listen is TCP)")
        // A TCP pool's status_listen may be one: they are its.
        let pool = try parse(Self.pool(listen: "127.0.0.1:9000", "listen_mode = \"0600\"\nstatus_path = \"/status\"\nstatus_listen = \"/run/s.sock\"")).pools.first
        #expect(pool?.socketPermissions.mode == 0o600)
    }

    /// PHP-FPM's dotted names become a TOML table: each points to the key it is here.
    @Test(arguments: ["owner", "group", "mode"])
    func phpFPMsSpelling(key: String) throws {
        let error = try #require(parseError(Self.pool("listen.\(key) = \"x\"").replacingOccurrences(of: "listen = \"/run/forklift/www.sock\"\n", with: "")))
        #expect(error.message.contains("PHP-FPM's listen.\(key) is listen_\(key) here"), "\(error)")
    }
}
