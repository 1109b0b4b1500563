/// Keyed shared data (`PluginContext.sharedData(key:)`): what a plugin built under a key of
/// its own, kept in a sealed memfd that a later generation of the same pool and plugin maps
/// instead of building it again.

/// Which data a set is: a new generation inherits a set only if all of this matches what its
/// plugin asks for (the pool is implicit: a host is offered its own pool's sets only).
public struct DataSetIdentity: Hashable, Sendable, CustomStringConvertible {
    /// NAME in `[pool.P.plugin.NAME]`.
    public let instance: String
    /// The plugin's own name (its descriptor's), so that another plugin configured under the
    /// same instance name never reads bytes it did not write.
    public let plugin: String
    /// The plugin's key: a version, a hash of its sources.
    public let key: String

    public init(instance: String, plugin: String, key: String) {
        self.instance = instance
        self.plugin = plugin
        self.key = key
    }

    public var description: String { "plugin \(instance) (\(plugin)) key \(key)" }

    /// What a key, an instance or a plugin name may hold: they travel in one tab-separated line.
    public static func isValidField(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 200 && text.unicodeScalars.allSatisfy { !$0.properties.isWhitespace && $0.value >= 0x20 && $0.value != 0x7F }
    }
}

/// Where a set lives: the whole memfd (header and data) is mapped at `address`, the same in
/// every process that maps it, because the plugin's views of it hold pointers.
public struct DataSetPlacement: Equatable, Sendable {
    public let address: UInt64
    /// The memfd's size, header included.
    public let size: Int

    public init(address: UInt64, size: Int) {
        self.address = address
        self.size = size
    }

    public var end: UInt64 { address + UInt64(size) }

    public func overlaps(_ other: DataSetPlacement) -> Bool {
        address < other.end && other.address < end
    }
}

/// A set the master hands a new host (the memfd is inherited at fork, open in the host).
public struct InheritedDataSet: Sendable {
    /// The master's name for it, quoted back in `HostReport.dataUnused`.
    public let id: Int
    public let identity: DataSetIdentity
    public let placement: DataSetPlacement
    /// The generation that built it, for logs.
    public let builtBy: Int
    public let descriptor: Int32

    public init(id: Int, identity: DataSetIdentity, placement: DataSetPlacement, builtBy: Int, descriptor: Int32) {
        self.id = id
        self.identity = identity
        self.placement = placement
        self.builtBy = builtBy
        self.descriptor = descriptor
    }
}
