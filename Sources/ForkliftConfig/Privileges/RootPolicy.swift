/// Whether a pool's workers may run as root: PHP-FPM's rule. A master started as root must
/// say, for every pool, which user its workers run as, and that user (and group) must not
/// be root, unless the operator passed `--allow-to-run-as-root` (PHP-FPM's `-R`). A master
/// started as another user cannot change users: a pool's `user` is then ignored, with a
/// notice from its host.
public struct RootPolicy: Equatable, Sendable {
    /// The user the master runs as.
    public var effectiveUser: UInt32
    public var allowRoot: Bool

    public init(effectiveUser: UInt32, allowRoot: Bool) {
        self.effectiveUser = effectiveUser
        self.allowRoot = allowRoot
    }

    public var runsAsRoot: Bool { effectiveUser == 0 }

    /// nil when `privileges` are allowed, else what is wrong and how to fix it.
    func problem(with privileges: ProcessPrivileges) -> (key: String, message: String)? {
        guard runsAsRoot, !allowRoot else { return nil }
        guard let user = privileges.user else {
            return ("user", "is required when forklift runs as root: set the user (and group) the pool's workers run as, "
                        + "or pass --allow-to-run-as-root (-R) to run them as root")
        }
        if user.id == 0 {
            return ("user", "is root (\(user.name)): the pool's workers would run as root; choose another user, or pass --allow-to-run-as-root (-R)")
        }
        if let group = privileges.group, group.id == 0 {
            return ("group", "is root's group (\(group.name)): choose another group, or pass --allow-to-run-as-root (-R)")
        }
        return nil
    }
}
