import ForkliftSystem
import Glibc

/// The master's control socket: `forklift reload` and `forklift stop` connect, send one
/// command line, and wait for one answer line (`ok ...` or `error ...`).
struct ControlServer {
    enum Command: String { case reload, stop, status, upgrade }

    let path: String
    let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = try Listener.unix(path: path, backlog: 16, mode: 0o600)
    }

    /// The control socket an upgrading master handed over.
    init(adopting fd: Int32, path: String) {
        self.path = path
        self.fd = fd
        try? setCloseOnExec(fd)
    }

    /// Accepts a waiting client and reads its command. The client sends the command right
    /// after connecting, so a short timeout is enough to keep a stalled client from holding
    /// up the master.
    func accept() -> (client: Int32, command: Command?, text: String)? {
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { return nil }
        try? setCloseOnExec(client)
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while !bytes.contains(UInt8(ascii: "\n")) && bytes.count < 256 {
            let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, 256, 0) }
            if count > 0 { bytes += buffer[0..<count] } else if count < 0 && errno == EINTR { continue } else { break }
        }
        let text = String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        return (client, Command(rawValue: text), text)
    }

    /// Sends the answer and closes the connection.
    static func answer(_ client: Int32, ok: Bool, _ message: String) {
        let line = (ok ? "ok " : "error ") + message.map { $0.isNewline ? " " : $0 } + "\n"
        var copy = line
        copy.withUTF8 { _ = send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        closeDescriptor(client)
    }

    func close() {
        closeDescriptor(fd)
        unlink(path)
    }
}
