import ForkliftSystem
import Glibc

/// The master's control socket: `forklift reload`, `stop`, `status` ... connect, send one
/// command line, and read the answer (`ok ...` or `error ...`) until the master closes.
///
/// Nothing here blocks: the listener and every client are non-blocking, served from the
/// master's one poll. A client has `commandTimeout` to send its line and `writeTimeout` to
/// read its answer; at most `maxSilent` clients may be connected without having sent a
/// command — one more, and the oldest of them is dropped — so idle connections can never
/// keep `forklift status` waiting (200 of them once delayed it 15 s).
struct ControlServer {
    typealias ClientID = MasterCore.ClientID

    static let commandTimeout = 1.0
    static let writeTimeout = 5.0
    static let maxSilent = 64
    static let maxClients = 1024
    static let maxCommand = 512

    struct Client {
        enum Stage { case reading, waiting, writing }
        let id: ClientID
        let fd: Int32
        var stage = Stage.reading
        var input: [UInt8] = []
        var output: [UInt8] = []
        var deadline: MonotonicInstant?
        let connected: MonotonicInstant
    }

    let path: String
    private(set) var fd: Int32
    private var clients: [ClientID: Client] = [:]
    private var nextID = 1
    /// After accept() failed for want of descriptors or memory: the listener stays readable,
    /// so it is left alone a moment instead of waking the master at once, again and again.
    private var acceptPausedUntil: MonotonicInstant?
    static let acceptPause = 0.1

    init(path: String) throws {
        self.path = path
        fd = try Listener.unix(path: path, backlog: 128, permissions: .init(mode: 0o600))
    }

    /// The control socket an upgrading master handed over.
    init(adopting fd: Int32, path: String) {
        self.path = path
        self.fd = fd
        try? setCloseOnExec(fd)
        try? setNonBlocking(fd)
    }

    /// What to poll: the listener (while there is room) and every client that has something to do.
    func pollRequests(listening: Bool, now: MonotonicInstant = .now()) -> [PollRequest] {
        var requests: [PollRequest] = []
        let paused = acceptPausedUntil.map { now < $0 } ?? false
        if listening && fd >= 0 && clients.count < Self.maxClients && !paused { requests.append(PollRequest(fd: fd, readable: true)) }
        for client in clients.values {
            switch client.stage {
            case .reading: requests.append(PollRequest(fd: client.fd, readable: true))
            case .writing: requests.append(PollRequest(fd: client.fd, writable: true))
            case .waiting: break
            }
        }
        return requests
    }

    var nextDeadline: MonotonicInstant? { (clients.values.compactMap(\.deadline) + [acceptPausedUntil].compactMap { $0 }).min() }

    /// Accepts, reads and writes what poll reported; returns the commands that arrived complete.
    mutating func service(_ ready: [Int32: PollResult], now: MonotonicInstant) -> [(ClientID, String)] {
        var commands: [(ClientID, String)] = []
        if let until = acceptPausedUntil, now >= until { acceptPausedUntil = nil }
        if ready[fd] != nil { acceptWaiting(now: now) }
        for id in clients.keys.sorted() {
            guard let client = clients[id], let result = ready[client.fd] else { continue }
            switch client.stage {
            case .reading where result.readable || result.closed:
                if let line = read(id) { commands.append((id, line)) }
            case .writing where result.writable || result.closed:
                flush(id)
            default:
                break
            }
        }
        expire(now: now)
        return commands
    }

    private mutating func acceptWaiting(now: MonotonicInstant) {
        while clients.count < Self.maxClients {
            let client = Glibc.accept(fd, nil, nil)
            guard client >= 0 else {
                // EAGAIN: none left. EMFILE, ENFILE, ENOMEM: try again in a moment.
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED {
                    acceptPausedUntil = now.advanced(bySeconds: Self.acceptPause)
                }
                return
            }
            try? setNonBlocking(client)
            try? setCloseOnExec(client)
            let silent = clients.values.filter { $0.stage == .reading }
            if silent.count >= Self.maxSilent, let oldest = silent.min(by: { $0.connected < $1.connected }) {
                drop(oldest.id)
            }
            let id = nextID
            nextID += 1
            clients[id] = Client(id: id, fd: client, deadline: now.advanced(bySeconds: Self.commandTimeout), connected: now)
        }
    }

    /// Reads what arrived; the command once its line is complete.
    private mutating func read(_ id: ClientID) -> String? {
        guard var client = clients[id] else { return nil }
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                client.input += buffer[0..<count]
                if client.input.count > Self.maxCommand || client.input.contains(UInt8(ascii: "\n")) { break }
                continue
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                clients[id] = client
                return nil
            }
            break // end of file or an error: whatever arrived is the command, if anything did
        }
        guard !client.input.isEmpty else {
            drop(id)
            return nil
        }
        let line = String(decoding: client.input.prefix { $0 != UInt8(ascii: "\n") }.prefix(Self.maxCommand), as: UTF8.self)
        client.stage = .waiting
        client.deadline = nil // reload and stop answer when they are done; status at once
        clients[id] = client
        return line
    }

    /// Queues the answer; the connection closes once it is written.
    mutating func answer(_ id: ClientID, ok: Bool, _ message: String, now: MonotonicInstant = .now()) {
        guard var client = clients[id] else { return }
        client.output = Array(((ok ? "ok " : "error ") + message + (message.hasSuffix("\n") ? "" : "\n")).utf8)
        client.stage = .writing
        client.deadline = now.advanced(bySeconds: Self.writeTimeout)
        clients[id] = client
        flush(id)
    }

    private mutating func flush(_ id: ClientID) {
        guard var client = clients[id] else { return }
        while !client.output.isEmpty {
            let count = client.output.withUnsafeBytes { send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 {
                client.output.removeFirst(count)
                continue
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                clients[id] = client
                return
            }
            break // the client went away
        }
        drop(id)
    }

    private mutating func expire(now: MonotonicInstant) {
        for client in clients.values {
            if let deadline = client.deadline, now >= deadline { drop(client.id) }
        }
    }

    private mutating func drop(_ id: ClientID) {
        guard let client = clients.removeValue(forKey: id) else { return }
        closeDescriptor(client.fd)
    }

    /// Stops listening, leaving the socket file (it belongs to the new master of an upgrade).
    mutating func closeListener() {
        closeDescriptor(fd)
        fd = -1
    }

    /// Closes everything and removes the socket file.
    mutating func close() {
        for id in Array(clients.keys) { drop(id) }
        if fd >= 0 {
            closeDescriptor(fd)
            unlink(path)
        }
        fd = -1
    }

    /// Every client descriptor (a forked child must not hold them: a client must see EOF).
    var clientDescriptors: [Int32] { clients.values.map(\.fd) }
}
