import CForkliftABI
import ForkliftConfig
import ForkliftWorker
import Glibc

/// Opens a plugin's shared object and checks that it is a Forklift plugin this host can run.
///
/// RTLD_NOW binds every symbol here, in the host, before any fork: a missing symbol is an
/// error now, not a crash in some worker later. RTLD_LOCAL keeps each plugin's copy of the
/// Swift SDK to itself.
public enum PluginLoader {
    /// `privateCopy`: load a copy of the file (so that a deploy overwriting it cannot change
    /// what runs); without it, the file itself, where a debugger finds its symbols.
    public static func open(_ settings: PluginSettings, privateCopy: Bool = true) throws(PluginFailure) -> UnsafePointer<forklift_plugin> {
        let who = "plugin \(settings.name) (\(settings.path))"
        // Every check below reads the copy that gets loaded, not the file, which may change.
        let copy = privateCopy ? try PrivateCopy(of: settings.path, name: "\(settings.name):\(lastComponent(settings.path))", who: who) : nil
        let path = copy?.path ?? settings.path
        try checkIsSharedObject(path, who: who)

        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            var message = "\(who): cannot be loaded: \(lastDynamicLinkerError())"
            if copy != nil && message.contains("cannot open shared object file") {
                message += " (plugins load from a private copy, so $ORIGIN in their RUNPATH does not find libraries next to the plugin file: give them an absolute RUNPATH or install them in a system path)"
            }
            throw PluginFailure(message)
        }
        guard let symbol = dlsym(handle, FORKLIFT_ENTRY_SYMBOL) else {
            throw PluginFailure("\(who): is not a Forklift plugin: it does not export \(FORKLIFT_ENTRY_SYMBOL)")
        }
        let entry = unsafeBitCast(symbol, to: forklift_plugin_entry_fn.self)
        guard let descriptor = entry() else {
            throw PluginFailure("\(who): \(FORKLIFT_ENTRY_SYMBOL)() returned NULL")
        }
        try checkABI(descriptor, who: who)
        try ToolchainCheck.verify(pluginPath: path, who: who)
        return descriptor
    }

    static func checkABI(_ plugin: UnsafePointer<forklift_plugin>, who: String) throws(PluginFailure) {
        let version = plugin.pointee.abi_version
        guard version == FORKLIFT_ABI_VERSION else {
            throw PluginFailure("\(who): was built for plugin ABI version \(version), but this forklift speaks version \(FORKLIFT_ABI_VERSION); rebuild it against this forklift's ForkliftPlugin")
        }
        let size = Int(plugin.pointee.struct_size)
        guard size >= MemoryLayout<forklift_plugin>.size else {
            throw PluginFailure("\(who): its forklift_plugin struct has \(size) bytes, expected at least \(MemoryLayout<forklift_plugin>.size)")
        }
        guard plugin.pointee.handle != nil else {
            throw PluginFailure("\(who): exports no handle hook")
        }
    }

    /// A clearer message than dlopen's for the common mistake of a file that is no library.
    static func checkIsSharedObject(_ path: String, who: String) throws(PluginFailure) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw PluginFailure("\(who): cannot open \(path.hasPrefix("/proc/") ? "the private copy" : path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        let count = magic.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4) }
        guard count == 4, magic == [0x7F, 0x45, 0x4C, 0x46] else {
            throw PluginFailure("\(who): is not a Forklift plugin: not a shared object (no ELF header)")
        }
    }

    static func lastComponent(_ path: String) -> String {
        String(path.split(separator: "/").last ?? Substring(path))
    }

    static func lastDynamicLinkerError() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}
