#if canImport(Glibc)
import Glibc
#endif

/// A data file mapped read-only. Its pages live in the page cache: shared by every worker,
/// by every generation after a reload, and by any other process reading the same file.
///
/// ```swift
/// let vectors = try MappedFile(path: "/srv/data/vectors.f32").array(of: Float.self)
/// ```
///
/// Map files in the initialiser: the mapping is then announced to the host with the file's
/// path, so a worker that writes to it is named in the log. Nothing is read until it is
/// touched: a first request may wait for the disk; read through the pages in `warmUp()` to
/// bring them into the page cache up front. The file is never unmapped.
///
/// Deploy a new data file by writing another file and renaming it over the old one: a
/// mapping follows the file it mapped, so a file rewritten in place changes under running
/// workers, and one truncated under them kills the workers reading past its new end (SIGBUS).
public final class MappedFile {
    /// The path the file was opened by.
    public let path: String
    /// The whole file, read-only.
    public let bytes: UnsafeRawBufferPointer

    /// Opens and maps the file at `path` (`MAP_SHARED`, `PROT_READ`). Throws ``PluginError``
    /// when it cannot be opened, stat'ed or mapped, or is empty.
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

    /// The file as an array of trivial values (its size must be a multiple of their stride;
    /// bytes past the last whole value are not part of the array). The values are read in
    /// this machine's byte order, as written by a program on it.
    public func array<Element: BitwiseCopyable>(of _: Element.Type) -> SharedArray<Element> {
        SharedArray(start: bytes.baseAddress!.assumingMemoryBound(to: Element.self), count: bytes.count / MemoryLayout<Element>.stride)
    }
}
