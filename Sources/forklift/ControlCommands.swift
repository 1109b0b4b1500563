import ArgumentParser
import ForkliftConfig
import Foundation
import Glibc

/// A subcommand that sends one command to the running master and reports its answer.
protocol ControlCommand: ParsableCommand {
    /// The word sent over the control socket.
    static var verb: String { get }
    var options: ControlOptions { get }
}

extension ControlCommand {
    func run() throws {
        try options.send(Self.verb)
    }
}

/// `forklift reload`: the running master re-reads conf.d and starts a new generation of
/// every pool; this waits for the outcome and exits 0 only if the new generation went live.
struct ReloadCommand: ControlCommand {
    static let verb = "reload"
    static let configuration = CommandConfiguration(
        commandName: verb,
        abstract: "Reload the configuration and plugins of the running server, with zero downtime; waits for the outcome."
    )
    @OptionGroup var options: ControlOptions
}

/// `forklift stop`: graceful stop of the running master; waits until it has exited.
struct StopCommand: ControlCommand {
    static let verb = "stop"
    static let configuration = CommandConfiguration(
        commandName: verb,
        abstract: "Stop the running server gracefully (busy workers finish their requests); waits until it has exited."
    )
    @OptionGroup var options: ControlOptions
}

/// `forklift upgrade`: replace the running forklift binary without failing a request.
struct UpgradeCommand: ControlCommand {
    static let verb = "upgrade"
    static let configuration = CommandConfiguration(
        commandName: verb,
        abstract: "Start the forklift binary now on disk with the running server's sockets; the old master drains and leaves once the new one serves."
    )
    @OptionGroup var options: ControlOptions
}

struct ControlOptions: ParsableArguments {
    @OptionGroup var configurationOptions: ConfigurationOptions

    @Option(help: ArgumentHelp("The master's control socket (default: from the configuration).", valueName: "path"))
    var control: String?

    @Option(help: "Seconds to wait for the master's answer.")
    var timeout: Double = 600

    /// Sends `command`, prints the answer, and fails unless it starts with "ok".
    func send(_ command: String) throws {
        print(try ask(command))
    }

    /// Sends `command` and returns the answer's text; throws unless it starts with "ok".
    func ask(_ command: String) throws -> String {
        let path = control ?? ControlSocketLocator.locate(directory: configurationOptions.directory)
        let answer: String
        do {
            answer = try ControlClient.send(command, to: path, timeout: timeout)
        } catch {
            throw ForkliftExit(message: "\(command): \(error)")
        }
        if answer.hasPrefix("ok ") { return String(answer.dropFirst(3)) }
        let message = answer.hasPrefix("error ") ? String(answer.dropFirst(6)) : answer
        throw ForkliftExit(message: "\(command) failed: \(message)")
    }
}

enum ControlClient {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func send(_ command: String, to path: String, timeout: Double) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8.prefix($0.count - 1))) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            throw Failure(description: "cannot reach the master at \(path): \(String(cString: strerror(errno))) (is forklift running?)")
        }
        var wait = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let line = command + "\n"
        _ = line.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            // The answer ends where the master closes the connection.
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                bytes += buffer[0..<count]
                continue
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw Failure(description: "no answer from the master within \(Int(timeout)) s") }
            break
        }
        guard !bytes.isEmpty else { throw Failure(description: "the master closed the connection without answering") }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
    }
}
