import ForkliftConfig
@testable import ForkliftMaster
import ForkliftSystem
import Testing

/// Socket activation: which descriptors the variables pass, and which pool takes each.
@Suite struct SocketActivationTests {
    @Test func theVariablesPassDescriptorsFromThreeToOurPidOnly() {
        let environment = ["LISTEN_PID": "10", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "www:unknown:"]
        let passed = SocketActivation.passed(environment, pid: 10)
        #expect(passed.map(\.fd) == [3, 4, 5])
        #expect(passed.map(\.name) == ["www", nil, nil], "systemd's default name and an empty one are no name")
        #expect(SocketActivation.passed(environment, pid: 11).isEmpty, "inherited by another process: not for it")
        #expect(SocketActivation.passed(["LISTEN_PID": "10", "LISTEN_FDS": "0"], pid: 10).isEmpty)
        #expect(SocketActivation.passed(["LISTEN_PID": "10", "LISTEN_FDS": "2"], pid: 10).map(\.name) == [nil, nil])
        #expect(SocketActivation.passed(["LISTEN_FDS": "2"], pid: 10).isEmpty, "without LISTEN_PID")
    }

    static func pool(_ name: String, _ listen: ListenAddress, status: ListenAddress? = nil) -> PoolSettings {
        var pool = PoolSettings(name: name, listen: listen, maxChildren: 1, plugins: [])
        pool.statusListen = status
        return pool
    }

    static func socket(_ fd: Int32, _ name: String?, _ address: SocketActivation.BoundAddress?) -> SocketActivation.Socket {
        SocketActivation.Socket(fd: fd, name: name, address: address, problem: address == nil ? "not a listening stream socket" : nil)
    }

    @Test func byAddressFirstThenByNameOfTheSameKind() {
        let pools = [Self.pool("www", .unix(path: "/run/www.sock"), status: .unix(path: "/run/status.sock")),
                     Self.pool("api", .tcp(host: "::", port: 9000)),
                     Self.pool("old", .tcp(host: "*", port: 8080))]
        let sockets = [
            Self.socket(3, "api", .inet(host: "127.0.0.1", port: 9001)),   // by name: api's listen
            Self.socket(4, "www", .unix(path: "/run/status.sock")),        // named www, but its address is www's status_listen
            Self.socket(5, nil, .inet(host: "0:0::0", port: 9000)),        // api's listen again: already has one
            Self.socket(6, "www", .unix(path: "/run/www.sock")),
            Self.socket(7, nil, .inet(host: "127.0.0.1", port: 80)),       // nobody's
            Self.socket(8, "www", nil),                                    // unusable
            Self.socket(9, nil, .inet(host: "0.0.0.0", port: 8080)),       // a port alone is every IPv4 address
        ]
        let assigned = ActivatedSockets.assign(sockets, to: pools)
        #expect(assigned[0] == .success(.init(address: .tcp(host: "::", port: 9000), pool: "api")))
        #expect(assigned[1] == .success(.init(address: .unix(path: "/run/status.sock"), pool: "www")))
        #expect(assigned[2] == .failure(.init(reason: "pool api already has a socket from systemd for [::]:9000")))
        #expect(assigned[3] == .success(.init(address: .unix(path: "/run/www.sock"), pool: "www")))
        #expect(assigned[4] == .failure(.init(reason: "no pool listens on 127.0.0.1:80")))
        #expect(assigned[5] == .failure(.init(reason: "not a listening stream socket")))
        #expect(assigned[6] == .success(.init(address: .tcp(host: "*", port: 8080), pool: "old")))
    }

    /// Named like a pool whose listen is a unix socket, a TCP socket is refused: in its place
    /// it would serve every client (a unix listen can have no listen_allowed_clients).
    @Test func aNameDoesNotChangeTheKindOfSocket() {
        let pools = [Self.pool("www", .unix(path: "/run/www.sock"))]
        let assigned = ActivatedSockets.assign([Self.socket(3, "www", .inet(host: "0.0.0.0", port: 9000))], to: pools)
        #expect(assigned[0] == .failure(.init(reason: "it is named like pool www, whose listen /run/www.sock is a unix socket, and it is not")))
    }
}
