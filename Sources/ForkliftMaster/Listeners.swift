import ForkliftConfig
import ForkliftSystem
import Glibc

/// The pools' listening sockets. The master opens them before any host exists and keeps
/// them for its whole life, so a host that dies and is replaced never refuses a connection:
/// the kernel queues it in the backlog meanwhile.
struct Listeners {
    private(set) var byPool: [String: Int32] = [:]
    private var unixPaths: [String] = []

    mutating func open(_ pool: PoolSettings) throws -> (fd: Int32, description: String) {
        let fd: Int32
        var description = pool.listen.description
        switch pool.listen {
        case .unix(let path):
            fd = try Listener.unix(path: path, backlog: pool.listenBacklog)
            unixPaths.append(path)
        case .tcp(let host, let port):
            fd = try Listener.tcp(host: host == "*" ? "0.0.0.0" : host, port: port, backlog: pool.listenBacklog)
            if port == 0, let bound = Listener.boundPort(fd) {
                description = ListenAddress.tcp(host: host, port: bound).description
            }
        }
        byPool[pool.name] = fd
        return (fd, description)
    }

    /// Closes every socket and removes the unix socket files.
    mutating func closeAll() {
        for fd in byPool.values { closeDescriptor(fd) }
        for path in unixPaths { unlink(path) }
        byPool = [:]
        unixPaths = []
    }
}
