import ForkliftConfig
import ForkliftIPC
import ForkliftSystem
import Foundation
import Glibc

/// What an upgrading master hands the new binary it starts, through the environment: the
/// listening sockets (still open, by address), the control socket, a channel to the old
/// master (a socket pair: the new one says "ready" or "failed ...", the old one "go" or
/// "abort"), and the generation numbers to continue from.
///
/// nginx and unicorn upgrade the same way: the old master execs the new binary with its
/// listening sockets inherited, and leaves once the new one serves.
public struct Handoff {
    public var listeners: [String: Int32]   // ListenAddress.description -> fd
    public var parking: [String: ParkingChannel] = [:]
    /// The addresses of `listeners` whose sockets systemd opened (socket activation).
    public var activated: [String] = []
    public var controlFD: Int32
    public var channelFD: Int32
    public var previousMaster: pid_t
    public var generations: [String: Int]
    /// The keyed data sets the old master keeps, so that the new one's generations inherit them.
    public var data: [HandedOnData] = []

    /// One keyed data set and its memfd, across the exec.
    public struct HandedOnData: Equatable {
        public let pool: String
        public let identity: DataSetIdentity
        public let placement: DataSetPlacement
        public let builtBy: Int
        public let descriptor: Int32
    }

    static let variable = "FORKLIFT_HANDOFF"

    /// The handoff this process was started with, if any (and removes it from the
    /// environment, so that nothing started later inherits it).
    public static func fromEnvironment() -> Handoff? {
        guard let text = getenv(variable).map({ String(cString: $0) }) else { return nil }
        unsetenv(variable)
        var handoff = Handoff(listeners: [:], controlFD: -1, channelFD: -1, previousMaster: 0, generations: [:])
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 2).map(String.init)
            guard parts.count >= 2 else { continue }
            switch parts[0] {
            case "listen" where parts.count == 3: handoff.listeners[parts[1]] = Int32(parts[2])
            case "park" where parts.count == 3:
                let ends = parts[2].split(separator: "\t").compactMap { Int32($0) }
                if ends.count == 2 { handoff.parking[parts[1]] = ParkingChannel(masterEnd: ends[0], workersEnd: ends[1]) }
            case "activated": handoff.activated.append(parts[1])
            case "control": handoff.controlFD = Int32(parts[1]) ?? -1
            case "channel": handoff.channelFD = Int32(parts[1]) ?? -1
            case "from": handoff.previousMaster = pid_t(parts[1]) ?? 0
            case "generation" where parts.count == 3: handoff.generations[parts[1]] = Int(parts[2])
            case "data":
                let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                guard fields.count == 9, let address = UInt64(fields[5]), let size = Int(fields[6]), let builtBy = Int(fields[7]),
                      let fd = Int32(fields[8]) else { continue }
                handoff.data.append(HandedOnData(pool: fields[1], identity: DataSetIdentity(instance: fields[2], plugin: fields[3], key: fields[4]),
                                                 placement: DataSetPlacement(address: address, size: size), builtBy: builtBy, descriptor: fd))
            default: break
            }
        }
        return handoff
    }

    /// Tells the upgrading master why this one cannot start (before a master runs at all:
    /// the configuration did not load).
    public func reportFailure(_ reason: String) {
        let line = "failed " + String(reason.map { $0.isNewline ? " " : $0 }) + "\n"
        _ = line.withCString { write(channelFD, $0, strlen($0)) }
    }

    var environmentValue: String {
        var lines = listeners.map { "listen\t\($0.key)\t\($0.value)" }
        lines += parking.map { "park\t\($0.key)\t\($0.value.masterEnd)\t\($0.value.workersEnd)" }
        lines += activated.map { "activated\t\($0)" }
        lines += ["control\t\(controlFD)", "channel\t\(channelFD)", "from\t\(previousMaster)"]
        lines += generations.map { "generation\t\($0.key)\t\($0.value)" }
        lines += data.map { set in
            ["data", set.pool, set.identity.instance, set.identity.plugin, set.identity.key, "\(set.placement.address)", "\(set.placement.size)",
             "\(set.builtBy)", "\(set.descriptor)"].joined(separator: "\t")
        }
        return lines.joined(separator: "\n")
    }

    /// Every descriptor the new binary must find open.
    var descriptors: [Int32] {
        Array(listeners.values) + parking.values.flatMap { [$0.masterEnd, $0.workersEnd] } + [controlFD, channelFD] + data.map(\.descriptor)
    }
}
