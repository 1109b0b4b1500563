#if canImport(Glibc)
import Glibc
#endif

/// A data file mapped read-only. Its pages live in the page cache: shared by every worker,
/// by every generation after a reload, and by any other process reading the same file.
public final class MappedFile {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PluginError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw PluginError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        let size = Int(info.st_size)
        guard size > 0 else { throw PluginError("\(path) is empty") }
        let memory = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        guard let memory, memory != MAP_FAILED else { throw PluginError("cannot map \(path): \(String(cString: strerror(errno)))") }
        self.path = path
        bytes = UnsafeRawBufferPointer(start: memory, count: size)
        SharedRegions.register(self)
    }

    /// The file as an array of trivial values (its size must be a multiple of their stride).
    public func array<Element: BitwiseCopyable>(of _: Element.Type) -> SharedArray<Element> {
        SharedArray(start: bytes.baseAddress!.assumingMemoryBound(to: Element.self), count: bytes.count / MemoryLayout<Element>.stride)
    }
}
