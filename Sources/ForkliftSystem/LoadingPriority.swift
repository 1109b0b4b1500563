import Glibc

/// Loading a generation (preload, fork) runs while the live generation serves on the same
/// cores. The host loads at a lower CPU priority so that serving wins, and each worker it
/// forks returns to the original priority.
///
/// Only where the priority can be raised back again (as root, which may lower nice values);
/// otherwise every worker would stay deprioritised, and nothing changes.
public struct LoadingPriority {
    public let original: Int32
    public let lowered: Bool

    /// Lowers this process's priority by `niceness` if it can be restored later.
    public static func lower(by niceness: Int32 = 10) -> LoadingPriority {
        errno = 0
        let original = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        guard errno == 0, geteuid() == 0 else { return LoadingPriority(original: original, lowered: false) }
        let ok = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, min(19, original + niceness)) == 0
        return LoadingPriority(original: original, lowered: ok)
    }

    /// In a forked worker (or the host once loaded): back to the original priority.
    public func restore() {
        if lowered { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, original) }
    }
}
