import Glibc

/// The master's pid file: refuses to overwrite the file of a master that is still alive.
public struct PidFile {
    public let path: String

    public init(path: String) { self.path = path }

    /// The pid recorded in the file, if it exists and holds a number.
    public func read() -> pid_t? {
        guard let fd = Optional(open(path, O_RDONLY | O_CLOEXEC)), fd >= 0 else { return nil }
        defer { closeDescriptor(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 31) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self).trimmingWhitespace
        return pid_t(text)
    }

    /// Writes our pid. Fails if the file names another process that is still running.
    /// `replacing` is a master that may still be alive (the one upgrading to us).
    public func write(pid: pid_t = getpid(), replacing previous: pid_t? = nil) throws {
        if let existing = read(), existing != pid, existing != previous, ChildProcess.exists(existing) {
            throw SystemError("pid file \(path): forklift is already running as pid \(existing)", errno: EEXIST)
        }
        let temporary = path + ".tmp"
        let fd = try retryingSyscall(cannotCreate) { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        defer { closeDescriptor(fd) }
        do {
            try writeAll(fd, "\(pid)\n")
        } catch let error as SystemError {
            throw SystemError("pid file \(path): cannot write \(temporary)", errno: error.errno)
        }
        // rename() so a reader never sees a half-written file.
        try retryingSyscall("\(cannotCreate) (rename from \(temporary))") { rename(temporary, path) }
    }

    private var cannotCreate: String { "pid file \(path): cannot create" }

    /// Why `write` could not create the file, found without writing anything (`forklift check`).
    public func creationProblem() -> SystemError? {
        PathProbe.whyNoNewEntry(at: path).map { SystemError(cannotCreate, errno: $0) }
    }

    /// Removes the file if it still names `pid` (a newer master may have replaced it).
    public func remove(ifOwnedBy pid: pid_t = getpid()) {
        if read() == pid { unlink(path) }
    }
}

/// Whether a process could make a new file or socket at a path, asked without making it.
public enum PathProbe {
    /// The errno creating an entry at `path` would fail with (its directory missing, not a
    /// directory, not writable; the path a directory), or nil. An existing file is no problem:
    /// what creates the entry replaces it.
    public static func whyNoNewEntry(at path: String) -> Int32? {
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { return EISDIR }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        guard stat(directory, &info) == 0 else { return errno }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return ENOTDIR }
        return access(directory, W_OK | X_OK) == 0 ? nil : errno
    }
}

extension String {
    var trimmingWhitespace: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
