@testable import ForkliftConfig
import ForkliftSystem
import Testing

/// listen_owner, listen_group, listen_mode and listen_allowed_clients: what they become, and
/// the errors that name the key and the value.
@Suite struct ListenOptionsTests {
    static func pool(listen: String = "/run/forklift/www.sock", _ lines: String) -> String {
        minimalPool.replacingOccurrences(of: "listen = \"127.0.0.1:9000\"", with: "listen = \"\(listen)\"\n\(lines)")
    }

    @Test func aUnixSocketIs0660OwnedByTheMasterUnlessSaidOtherwise() throws {
        let pool = try #require(try parse(Self.pool("")).pools.first)
        #expect(pool.socketPermissions == SocketPermissions(owner: nil, group: nil, mode: 0o660))
        #expect(pool.allowedClients == nil)
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

    @Test func allowedClientsAreAddressesAndRanges() throws {
        let text = Self.pool(listen: "0.0.0.0:9000", "listen_allowed_clients = \"127.0.0.1, ::1,10.0.0.0/8 , fd00::/8, ::ffff:192.168.0.0/112\"")
        let allowed = try #require(try parse(text).pools.first?.allowedClients)
        #expect(allowed.description == "127.0.0.1, ::1, 10.0.0.0/8, fd00::/8, ::ffff:192.168.0.0/112")
        func allows(_ address: String) -> Bool { allowed.allows(IPAddress.bytes(address)!) }
        #expect(allows("127.0.0.1") && allows("::1") && allows("10.200.3.4") && allows("fd12:3456::9") && allows("192.168.7.7"))
        #expect(!allows("127.0.0.2") && !allows("::2") && !allows("11.0.0.1") && !allows("fe80::1") && !allows("192.169.0.1"))
        // An IPv4 client of a [::] listener arrives IPv4-mapped: matched as IPv4.
        #expect(allows("::ffff:127.0.0.1") && allows("::ffff:10.1.1.1") && !allows("::ffff:127.0.0.2"))
        let array = try parse(Self.pool(listen: "[::]:9000", "listen_allowed_clients = [\"127.0.0.1\", \"::1\"]")).pools.first?.allowedClients
        #expect(array?.ranges.count == 2)
    }

    @Test(arguments: [
        ("\"127.0.0.300\"", "expected an IPv4 or IPv6 address, or a range as ADDRESS/BITS (10.0.0.0/8, fd00::/8), got \"127.0.0.300\""),
        ("\"localhost\"", "got \"localhost\""),
        ("\"127.0.0.1,,::1\"", "an empty entry"),
        ("\"10.0.0.0/33\"", "\"10.0.0.0/33\": a range's BITS are 0 to 32 for an IPv4 address"),
        ("\"::/129\"", "BITS are 0 to 128 for an IPv6 address"),
        ("\"10.0.0.0/+8\"", "BITS are 0 to 32"),
        ("\"\"", "an empty entry"),
        ("[]", "no address: leave the key out to serve every client"),
        ("[1]", "expected an array of strings"),
    ])
    func badAllowedClients(value: String, message: String) throws {
        expectRefused(Self.pool(listen: "127.0.0.1:9000", "listen_allowed_clients = \(value)"), key: "pool.www.listen_allowed_clients", saying: message)
    }

    @Test func allowedClientsOnAUnixSocketIsAnErrorNamingThePool() throws {
        expectRefused(Self.pool("listen_allowed_clients = \"127.0.0.1\""), key: "pool.www.listen_allowed_clients",
                      saying: "applies to a TCP listen only, and pool \"www\" listens on the unix socket /run/forklift/www.sock")
    }

    @Test func permissionsOnAPoolWithoutAUnixSocketAreAnError() throws {
        expectRefused(Self.pool(listen: "127.0.0.1:9000", "listen_mode = \"0600\""), key: "pool.www.listen_mode",
                      saying: "applies to unix sockets, and pool \"www\" has none (listen is TCP)")
        // A TCP pool's status_listen may be one: they are its.
        let pool = try parse(Self.pool(listen: "127.0.0.1:9000", "listen_mode = \"0600\"\nstatus_path = \"/status\"\nstatus_listen = \"/run/s.sock\"")).pools.first
        #expect(pool?.socketPermissions.mode == 0o600)
    }

    /// PHP-FPM's dotted names become a TOML table: each points to the key it is here.
    @Test(arguments: ["owner", "group", "mode", "allowed_clients"])
    func phpFPMsSpelling(key: String) throws {
        let error = try #require(parseError(Self.pool("listen.\(key) = \"x\"").replacingOccurrences(of: "listen = \"/run/forklift/www.sock\"\n", with: "")))
        #expect(error.message.contains("PHP-FPM's listen.\(key) is listen_\(key) here"), "\(error)")
    }
}
