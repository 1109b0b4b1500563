import Glibc
import Synchronization

/// Which process this is: every log line carries it, and `ps` shows it as the title.
public struct ProcessIdentity: Sendable, Equatable, CustomStringConvertible {
    public enum Role: String, Sendable {
        case master, host, worker, status, check
    }

    public var role: Role
    public var pool: String?
    public var generation: Int?

    public init(role: Role, pool: String? = nil, generation: Int? = nil) {
        self.role = role
        self.pool = pool
        self.generation = generation
    }

    /// `master`, `host pool=www gen=1`, `worker pool=www gen=1`.
    public var description: String {
        var text = role.rawValue
        if let pool { text += " pool=\(pool)" }
        if let generation { text += " gen=\(generation)" }
        return text
    }

    private static let storage = Mutex(ProcessIdentity(role: .master))

    /// This process's identity. Set once right after fork, before anything logs.
    public static var current: ProcessIdentity {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}
