import CForkliftSys
import ForkliftSystem
import ForkliftWorker
import Glibc

/// A plugin file copied into an anonymous memory file (memfd) before it is loaded.
///
/// A running generation must not care what happens to the file afterwards: `cp new.so
/// old.so` rewrites the pages a process mapped from `old.so` in place, and every process
/// running that code crashes. Loading a private copy makes each generation immune, and it
/// also sidesteps glibc returning the image already loaded under the same path. The copy is
/// mapped MAP_PRIVATE like any library, so its pages are still shared by all workers.
///
/// The loaded image is named `/proc/self/fd/N`, so `$ORIGIN` in the plugin's RUNPATH points
/// there: the plugin's own dependencies must be found through absolute RUNPATH entries or
/// the system paths (SwiftPM puts the toolchain's absolute path first), or be loaded already.
///
/// The descriptor stays open for the life of the process: were it closed, the next copy
/// would get the same number, hence the same `/proc/self/fd/N` name, and glibc would hand
/// back the image already loaded under that name instead of loading the new one.
struct PrivateCopy {
    let fd: Int32
    /// A copy is loaded through /proc, which a pool's chroot may not have: there the host
    /// loads the file itself (docs/deploy.md: mount /proc in the chroot to keep copies).
    static var isPossible: Bool { access("/proc/self/fd", F_OK) == 0 }

    /// What to dlopen(): the memfd through /proc.
    var path: String { "/proc/self/fd/\(fd)" }

    /// `key`: the configuration key that names the file, for the fix when it cannot be opened.
    init(of source: String, name: String, who: String, key: String) throws(PluginFailure) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
            let code = errno
            throw PluginFailure("\(who): cannot open the file: \(String(cString: strerror(code)))" + Self.fix(code, key: key))
        }
        defer { closeDescriptor(input) }
        if let problem = PluginFileTrust.problem(file: input, path: source, user: geteuid()) {
            throw PluginFailure("\(who): refusing to load it: \(problem)")
        }
        let memfd = forklift_memfd_create("forklift:\(name)")
        guard memfd >= 0 else {
            throw PluginFailure("\(who): cannot make a private copy: memfd_create: \(String(cString: strerror(errno)))")
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                closeDescriptor(memfd)
                throw PluginFailure("\(who): cannot read the file: \(String(cString: strerror(code)))" + Self.fix(code, key: key))
            }
            do {
                try buffer.withUnsafeBytes { try writeAll(memfd, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            } catch {
                closeDescriptor(memfd)
                throw PluginFailure("\(who): cannot make a private copy: \(error)")
            }
        }
        fd = memfd
    }

    private static func fix(_ code: Int32, key: String) -> String {
        switch code {
        case ENOENT, ENOTDIR: "; expected the plugin's shared object there: build the plugin, or correct \(key) (a relative path resolves against global.prefix)"
        case EACCES: "; the user forklift runs as must be able to read it"
        case EISDIR: "; \(key) must name the shared object itself (libNAME.so), not its directory"
        default: ""
        }
    }
}
