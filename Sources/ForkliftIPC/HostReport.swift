/// What a host tells the master, one line each over the host's report pipe.
public enum HostReport: Equatable, Sendable {
    /// Plugins loaded and preloaded; the workers are forked next. Sent by a host the master
    /// may lower while it loads (`HostLaunch.loadsInBackground`): it has raised itself.
    case loaded
    /// Every plugin loaded and preloaded, every initial worker passed worker init.
    case ready(summary: String)
    /// The generation cannot serve; the reason names the plugin and the step.
    case failed(reason: String)
    /// Serving, but too many workers crashed lately (emergency_restart_threshold):
    /// the master should replace this host with a fresh one.
    case emergencyRestart(reason: String)
    /// A plugin built and sealed keyed data; the message carries its memfd, which the master
    /// keeps to offer to the pool's later generations.
    case dataBuilt(DataSetIdentity, DataSetPlacement)
    /// The host did not use the inherited set `id` (its plugin asked for another key, or
    /// there was no such plugin any more): the master need not keep it alive for this host.
    case dataUnused(id: Int)

    public var line: String {
        switch self {
        case .loaded: "loaded\n"
        case .ready(let summary): "ready \(Self.oneLine(summary))\n"
        case .failed(let reason): "failed \(Self.oneLine(reason))\n"
        case .emergencyRestart(let reason): "emergency \(Self.oneLine(reason))\n"
        case .dataBuilt(let identity, let placement):
            "data-built \(identity.instance)\t\(identity.plugin)\t\(identity.key)\t\(placement.address)\t\(placement.size)\n"
        case .dataUnused(let id): "data-unused \(id)\n"
        }
    }

    public init?(line: String) {
        if line == "loaded" {
            self = .loaded
        } else if line.hasPrefix("ready ") {
            self = .ready(summary: String(line.dropFirst(6)))
        } else if line.hasPrefix("failed ") {
            self = .failed(reason: String(line.dropFirst(7)))
        } else if line.hasPrefix("emergency ") {
            self = .emergencyRestart(reason: String(line.dropFirst(10)))
        } else if line.hasPrefix("data-built ") {
            let fields = line.dropFirst(11).split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, let address = UInt64(fields[3]), let size = Int(fields[4]), size > 0 else { return nil }
            self = .dataBuilt(DataSetIdentity(instance: fields[0], plugin: fields[1], key: fields[2]), DataSetPlacement(address: address, size: size))
        } else if line.hasPrefix("data-unused "), let id = Int(line.dropFirst(12)) {
            self = .dataUnused(id: id)
        } else {
            return nil
        }
    }

    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}

/// Splits a byte stream into lines. A line longer than `limit` is cut there: the other end
/// (a host, which runs plugin code) cannot make the reader hold more than that.
public struct LineBuffer {
    private var pending: [UInt8] = []
    public let limit: Int

    public init(limit: Int = 64 * 1024) {
        self.limit = limit
    }

    public mutating func append(_ bytes: [UInt8]) -> [String] {
        pending += bytes
        var lines: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: pending[..<min(newline, limit)], as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        if pending.count > limit {
            lines.append(String(decoding: pending[..<limit], as: UTF8.self))
            pending = []
        }
        return lines
    }

    /// What is left after the last newline (the stream ended), if anything.
    public mutating func remainder() -> String? {
        defer { pending = [] }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
