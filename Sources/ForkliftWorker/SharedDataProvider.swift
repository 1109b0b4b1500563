import CForkliftABI

/// The host's keyed shared data, as the ABI's `shared_data_open` and `shared_data_seal` reach
/// it (ForkliftHost's `SharedDataHost` during preload; nobody in a worker, where both fail).
public protocol SharedDataProvider: AnyObject {
    func open(for plugin: PluginInstance, key: String, format: UInt32, rootLength: Int, capacity: Int, label: String) throws(PluginFailure) -> forklift_shared_data
    func seal(for plugin: PluginInstance, _ data: inout forklift_shared_data, root: UnsafeRawBufferPointer, used: Int) throws(PluginFailure)
}

public enum SharedDataProviders {
    /// Set by the host while its plugins preload, nil before and after.
    nonisolated(unsafe) public static var current: SharedDataProvider?
}
