import ForkliftConfig
import ForkliftSystem
import Glibc

/// sshd's StrictModes for plugin files: code that the host loads, and every worker runs, must
/// not be replaceable by anyone but root and the user the pool runs as. So the file and every
/// directory above it must be owned by one of them, and none may be writable by group or
/// others — a directory that is (such as /tmp) only with its sticky bit set, where nobody can
/// rename another's file. The file is judged by the descriptor the host reads it from, so
/// what is checked is what is loaded.
enum PluginFileTrust {
    /// nil when `fd` (opened from `path`) may be loaded by a process running as `user`, else why not.
    static func problem(file fd: Int32, path: String, user: uid_t) -> String? {
        var status = stat()
        guard fstat(fd, &status) == 0 else { return "cannot stat it: \(String(cString: strerror(errno)))" }
        if let problem = judge(status, user: user, isDirectory: false) { return "\(path) \(problem)" }
        for directory in directories(above: path) + directories(above: realPath(path) ?? path) {
            guard stat(directory, &status) == 0 else { continue } // not there to judge: the open succeeded through it
            if let problem = judge(status, user: user, isDirectory: true) { return "its directory \(directory) \(problem)" }
        }
        return nil
    }

    private static func judge(_ status: stat, user: uid_t, isDirectory: Bool) -> String? {
        let mode = status.st_mode & 0o7777
        if status.st_uid != 0 && status.st_uid != user {
            return "is owned by \(name(status.st_uid)), neither root nor the user the pool runs as (\(name(user))): chown it"
        }
        let sticky = isDirectory && mode & UInt32(S_ISVTX) != 0
        if mode & 0o022 != 0 && !sticky {
            let writers = [mode & 0o020 != 0 ? "its group" : nil, mode & 0o002 != 0 ? "others" : nil].compactMap { $0 }.joined(separator: " and ")
            return "is writable by \(writers) (mode \(SocketPermissions.octal(mode))): whoever can write it can change the code every worker runs; chmod go-w it"
        }
        return nil
    }

    /// "/srv/app/lib/x.so" -> "/srv/app/lib", "/srv/app", "/srv", "/".
    static func directories(above path: String) -> [String] {
        var components = path.split(separator: "/").dropLast()
        var result: [String] = []
        while !components.isEmpty {
            result.append("/" + components.joined(separator: "/"))
            components = components.dropLast()
        }
        return path.hasPrefix("/") ? result + ["/"] : result
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func name(_ uid: uid_t) -> String {
        "\(Accounts.describeUser(uid)) (uid \(uid))"
    }
}
