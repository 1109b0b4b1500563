import Glibc

/// Listening sockets, opened by the master and inherited by every host and worker.
///
/// They are made non-blocking: a worker waits for readiness with poll/epoll (together with its
/// signal pipe) and then accepts. With several workers woken for one connection, the losers
/// get EAGAIN instead of blocking in accept() where a TERM could no longer reach them.
/// (Linux does not pass O_NONBLOCK on to accepted connections, so libfcgi's I/O stays blocking.)
public enum Listener {
    /// A unix socket at `path`. A stale socket file left by a dead server is replaced; a live
    /// one (something accepts connections on it) or a non-socket file is an error.
    ///
    /// A client needs write permission on the socket file to connect. bind() creates the file
    /// with 0777 minus the umask, so it binds under a umask of 0777 (a file nobody but root may
    /// connect to), gives it its owner and group, then its mode, and only then listens: no
    /// client connects under another owner or mode than the configured ones, not even for a
    /// moment (before listen() a connect is refused anyway).
    public static func unix(path: String, backlog: Int32, permissions: SocketFilePermissions = .init()) throws -> Int32 {
        var address = try unixAddress(path)
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw SystemError("listen on \(path): a file that is not a socket is in the way", errno: EEXIST)
            }
            if isAcceptingConnections(&address) {
                throw SystemError("listen on \(path): another process is already listening there", errno: EADDRINUSE)
            }
            unlink(path)
        }
        let fd = try retryingSyscall("socket(AF_UNIX)") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            // The master is single-threaded: nothing else creates a file meanwhile.
            let saved = umask(0o777)
            let bound = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    (bind(fd, sa, socklen_t(MemoryLayout<sockaddr_un>.size)), errno)
                }
            }
            umask(saved)
            guard bound.0 == 0 else { throw SystemError("bind(\(path))", errno: bound.1) }
            _ = try apply(permissions, to: path)
            try retryingSyscall("listen(\(path))") { listen(fd, backlog) }
            try setNonBlocking(fd)
            return fd
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    /// Gives the socket file at `path` its owner, group and mode (chown, then chmod: a new
    /// group never gets the old mode's rights); returns what it had when anything differed.
    /// lchown: a symbolic link put in its place is not followed.
    @discardableResult
    public static func apply(_ permissions: SocketFilePermissions, to path: String) throws -> SocketFilePermissions? {
        var info = stat()
        try retryingSyscall("lstat(\(path))") { lstat(path, &info) }
        let before = SocketFilePermissions(owner: info.st_uid, group: info.st_gid, mode: info.st_mode & 0o7777)
        let wanted = permissions.resolved
        guard before != wanted else { return nil }
        if before.owner != wanted.owner || before.group != wanted.group {
            try retryingSyscall("chown(\(path), \(wanted.owner!), \(wanted.group!))") { lchown(path, wanted.owner!, wanted.group!) }
        }
        try retryingSyscall("chmod(\(path), \(String(wanted.mode, radix: 8)))") { chmod(path, wanted.mode) }
        return before
    }

    /// A TCP socket on `host:port` (numeric or resolvable host; "*" for every IPv4 address,
    /// "::" for every address, IPv4 and IPv6).
    public static func tcp(host: String, port: UInt16, backlog: Int32) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        // Not getaddrinfo's own wildcard (a null node): it may answer :: or 0.0.0.0 first.
        let node = (host == "*" || host.isEmpty) ? "0.0.0.0" : host
        let status = getaddrinfo(node, String(port), &hints, &result)
        guard status == 0, let first = result else {
            throw SystemError("resolve \(host): \(String(cString: gai_strerror(status)))", errno: EINVAL)
        }
        defer { freeaddrinfo(result) }
        let fd = try retryingSyscall("socket") { socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            var on: Int32 = 1
            try retryingSyscall("setsockopt(SO_REUSEADDR)") {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
            }
            if first.pointee.ai_family == AF_INET6 {
                // As PHP-FPM's [::] ("covers IPv6 ANYADDR and mapped IPv4 ANYADDR"): IPv4
                // clients too, whatever net.ipv6.bindv6only says (Linux's default is 0, not
                // every system's). Of the other IPv6 addresses only an IPv4-mapped one
                // (::ffff:a.b.c.d) cares: it can be bound with it off only.
                var off: Int32 = 0
                try retryingSyscall("setsockopt(IPV6_V6ONLY)") {
                    setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
                }
            }
            try retryingSyscall("bind(\(host):\(port))") { bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) }
            try retryingSyscall("listen(\(host):\(port))") { listen(fd, backlog) }
            try setNonBlocking(fd)
            return fd
        } catch {
            closeDescriptor(fd)
            throw error
        }
    }

    /// The port a TCP listener is bound to (useful when it was asked for port 0).
    public static func boundPort(_ fd: Int32) -> UInt16? {
        IPAddress.local(of: fd)?.port
    }

    private static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw SystemError("listen on \(path): a unix socket path may have at most \(capacity - 1) bytes", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        return address
    }

    private static func isAcceptingConnections(_ address: inout sockaddr_un) -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { closeDescriptor(probe) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}

/// A unix socket file's owner, group and mode; a nil owner or group is the process's own
/// (effective) user or group, as for a file it creates.
public struct SocketFilePermissions: Equatable, Sendable, CustomStringConvertible {
    public var owner: uid_t?
    public var group: gid_t?
    public var mode: mode_t

    public init(owner: uid_t? = nil, group: gid_t? = nil, mode: mode_t = 0o660) {
        self.owner = owner
        self.group = group
        self.mode = mode
    }

    var resolved: SocketFilePermissions {
        SocketFilePermissions(owner: owner ?? geteuid(), group: group ?? getegid(), mode: mode)
    }

    /// "0660 root:www-data"
    public var description: String {
        let octal = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - octal.count)) + octal
            + " \(Accounts.describeUser(owner ?? geteuid())):\(Accounts.describeGroup(group ?? getegid()))"
    }
}
