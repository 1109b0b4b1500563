import CForkliftABI
import ForkliftConfig
import ForkliftSystem
import ForkliftWorker
import Glibc

/// Opens a plugin's shared object and checks that it is a Forklift plugin this host can run.
///
/// RTLD_NOW binds every symbol here, in the host, before any fork: a missing symbol is an
/// error now, not a crash in some worker later. RTLD_LOCAL keeps each plugin's copy of the
/// Swift SDK to itself.
///
/// Every refusal names the plugin and its file, says what was found and what was expected,
/// and how to fix it where that is clear.
public enum PluginLoader {
    public struct Loaded {
        public let descriptor: UnsafePointer<forklift_plugin>
        /// It exports FORKLIFT_DEBUG_BUILD_SYMBOL: a debug build of the Swift SDK.
        public let isDebugBuild: Bool
    }

    /// `pool`: the pool's name, for the configuration key that names the file.
    /// `privateCopy`: load a copy of the file (so that a deploy overwriting it cannot change
    /// what runs); without it, the file itself, where a debugger finds its symbols.
    public static func open(_ settings: PluginSettings, pool: String, privateCopy: Bool = true) throws(PluginFailure) -> Loaded {
        let who = "plugin \(settings.name) (\(settings.path))"
        // Every check below reads the copy that gets loaded, not the file, which may change.
        let copy = privateCopy && PrivateCopy.isPossible ? try PrivateCopy(of: settings.path, name: "\(settings.name):\(lastComponent(settings.path))", who: who,
                                                 key: "pool.\(pool).plugin.\(settings.name).path") : nil
        let path = copy?.path ?? settings.path
        if copy == nil { try checkTrust(settings.path, who: who) }
        try checkIsSharedObject(path, who: who)

        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            // dlerror names the private copy (/proc/self/fd/N), which says nothing: `who` names the file.
            let error = lastDynamicLinkerError().replacingOccurrences(of: path + ": ", with: "")
            throw PluginFailure("\(who): cannot be loaded: \(error)" + (LinkerHint.for(error).map { " (\($0))" } ?? ""))
        }
        guard let symbol = dlsym(handle, FORKLIFT_ENTRY_SYMBOL) else {
            throw PluginFailure("\(who): is not a Forklift plugin: it does not export \(FORKLIFT_ENTRY_SYMBOL); expected the entry function: in Swift @_cdecl(\"\(FORKLIFT_ENTRY_SYMBOL)\") public func entry() -> UnsafeRawPointer { export(YourHandler.self) }, in C const forklift_plugin *\(FORKLIFT_ENTRY_SYMBOL)(void) (docs/plugin-abi.md)")
        }
        let entry = unsafeBitCast(symbol, to: forklift_plugin_entry_fn.self)
        guard let descriptor = entry() else {
            throw PluginFailure("\(who): \(FORKLIFT_ENTRY_SYMBOL)() returned NULL, expected a pointer to its forklift_plugin")
        }
        try checkABI(descriptor, who: who)
        try ToolchainCheck.verify(pluginPath: path, who: who)
        return Loaded(descriptor: descriptor, isDebugBuild: dlsym(handle, FORKLIFT_DEBUG_BUILD_SYMBOL) != nil)
    }

    static func checkABI(_ plugin: UnsafePointer<forklift_plugin>, who: String) throws(PluginFailure) {
        let version = plugin.pointee.abi_version
        guard version == FORKLIFT_ABI_VERSION else {
            throw PluginFailure("\(who): was built for plugin ABI version \(version), but this forklift speaks version \(FORKLIFT_ABI_VERSION); rebuild it against this forklift's ForkliftPlugin (a C plugin: against its forklift_plugin.h)")
        }
        let size = Int(plugin.pointee.struct_size)
        guard size >= MemoryLayout<forklift_plugin>.size else {
            throw PluginFailure("\(who): its forklift_plugin struct has \(size) bytes, expected at least \(MemoryLayout<forklift_plugin>.size); rebuild it against this forklift's forklift_plugin.h")
        }
        guard plugin.pointee.handle != nil else {
            throw PluginFailure("\(who): exports no handle hook; its forklift_plugin must set handle")
        }
    }

    /// A clearer message than dlopen's for a file that is no library, or not one for here.
    static func checkIsSharedObject(_ path: String, who: String) throws(PluginFailure) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw PluginFailure("\(who): cannot open \(path.hasPrefix("/proc/") ? "the private copy" : path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 64)
        let count = header.withUnsafeMutableBytes { read(fd, $0.baseAddress, 64) }
        if let problem = ELFKind.problem(Array(header.prefix(max(0, count)))) {
            throw PluginFailure("\(who): is not a Forklift plugin: not a shared object: \(problem)")
        }
    }

    /// The check a private copy makes when it reads the file, for a file loaded itself.
    static func checkTrust(_ path: String, who: String) throws(PluginFailure) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return } // dlopen says why it cannot be read
        defer { closeDescriptor(fd) }
        if let problem = PluginFileTrust.problem(file: fd, path: path, user: geteuid()) {
            throw PluginFailure("\(who): refusing to load it: \(problem)")
        }
    }

    static func lastComponent(_ path: String) -> String {
        String(path.split(separator: "/").last ?? Substring(path))
    }

    static func lastDynamicLinkerError() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
    }
}

/// What a file's first bytes say it is, when that is not an ELF shared object for this machine.
enum ELFKind {
    static let build = "build the plugin as a shared object (SwiftPM: a .library product of type: .dynamic) and point path at its libNAME.so"

    static func problem(_ bytes: [UInt8]) -> String? {
        guard bytes.count >= 4, bytes[0..<4] == [0x7F, 0x45, 0x4C, 0x46] else {
            return "expected an ELF header, found \(describe(bytes)); \(build)"
        }
        guard bytes.count >= 20 else { return "expected an ELF shared object, found a truncated ELF header" }
        if bytes[4] != 2 /* ELFCLASS64 */ {
            return "expected a 64-bit ELF shared object, found a 32-bit one; build it for this machine"
        }
        let machine = UInt16(bytes[18]) | UInt16(bytes[19]) << 8
        if let host = hostMachine, host != machine {
            return "expected one for \(name(ofMachine: host)), found one for \(name(ofMachine: machine)); build it on (or for) this machine"
        }
        switch UInt16(bytes[16]) | UInt16(bytes[17]) << 8 {
        case 1: return "expected a shared object, found an object file (.o); link it with -shared, or \(build)"
        case 2: return "expected a shared object, found an executable; \(build)"
        case 4: return "expected a shared object, found a core dump"
        default: return nil // ET_DYN: a shared object (or a position-independent executable, which dlopen refuses itself)
        }
    }

    private static func describe(_ bytes: [UInt8]) -> String {
        if bytes.isEmpty { return "an empty file (a copy still in progress?)" }
        if bytes.starts(with: Array("!<arch>\n".utf8)) { return "a static library (ar archive)" }
        if bytes.starts(with: Array("#!".utf8)) { return "a script" }
        let machO: [[UInt8]] = [[0xCF, 0xFA, 0xED, 0xFE], [0xCE, 0xFA, 0xED, 0xFE], [0xCA, 0xFE, 0xBA, 0xBE]]
        if machO.contains(where: { bytes.starts(with: $0) }) { return "a Mach-O file (built on macOS?)" }
        if bytes.allSatisfy({ $0 == 9 || $0 == 10 || $0 == 13 || (0x20..<0x7F).contains($0) || $0 >= 0x80 }) { return "a text file" }
        return "no ELF header (the file begins " + bytes.prefix(4).map { String($0, radix: 16) }.joined(separator: " ") + ")"
    }

    /// e_machine of this forklift.
    private static let hostMachine: UInt16? = {
        let fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 20)
        guard header.withUnsafeMutableBytes({ read(fd, $0.baseAddress, 20) }) == 20 else { return nil }
        return UInt16(header[18]) | UInt16(header[19]) << 8
    }()

    private static func name(ofMachine machine: UInt16) -> String {
        switch machine {
        case 3: "i386"
        case 40: "arm"
        case 62: "x86_64"
        case 183: "aarch64"
        case 243: "riscv"
        default: "machine \(machine)"
        }
    }
}

/// The fix for a dlopen failure, where the message makes it plain.
enum LinkerHint {
    static let swiftRuntime = ["libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime"]

    static func `for`(_ error: String) -> String? {
        let missing = missingLibrary(error)
        if missing?.hasPrefix("libfcgi.so") == true || error.contains("undefined symbol: FCGX_") {
            return "the plugin needs libfcgi, which is not installed: apt-get install libfcgi-dev (or scripts/install-deps.sh)"
        }
        if let missing {
            if swiftRuntime.contains(where: missing.hasPrefix) {
                return "\(missing) is a library of the Swift toolchain the plugin was built with, not found here: rebuild the plugin with this forklift's toolchain"
            }
            return "plugins load from a private copy, so $ORIGIN in their RUNPATH does not find libraries next to the plugin file: give them an absolute RUNPATH or install them in a system path"
        }
        if error.contains("undefined symbol: $s") || error.contains("undefined symbol: swift_") {
            return "a Swift symbol this forklift's Swift runtime does not have: the plugin was built with another Swift toolchain; rebuild it with this forklift's"
        }
        if error.contains("cannot dynamically load position-independent executable") {
            return "it is an executable; \(ELFKind.build)"
        }
        if error.contains("version `GLIBC_") {
            return "it was built against a newer glibc than this system's: build it on this system"
        }
        return nil
    }

    /// "…: libfoo.so.1: cannot open shared object file: …" → "libfoo.so.1"
    static func missingLibrary(_ error: String) -> String? {
        guard let end = error.range(of: ": cannot open shared object file") else { return nil }
        let before = error[..<end.lowerBound]
        let start = before.range(of: ": ", options: .backwards).map(\.upperBound) ?? before.startIndex
        return String(before[start...])
    }
}
