import CForkliftSys
import ForkliftSystem
import Glibc
import Testing

/// A signal the kernel refuses (EPERM: the process runs as another user) is an answer the
/// caller logs, not a trap that takes the master or a host down.
@Suite struct SignalDeliveryTests {
    @Test func notPermittedIsAnAnswer() throws {
        // As a user that is not root, pid 1 may not be signalled. The child only makes system
        // calls between fork and _exit: the test process has other threads.
        let child = forklift_fork()
        if child == 0 {
            if geteuid() == 0 && forklift_set_all_uids(65534) != 0 { _exit(2) }
            _exit(ChildProcess.send(.usr1, to: 1) == .notPermitted ? 0 : 1)
        }
        try #require(child > 0)
        var status: Int32 = 0
        while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        #expect(status == 0, "exit status \(status >> 8): 1 = not .notPermitted, 2 = could not drop root")
        #expect(ChildProcess.send(.usr1, to: child) == .gone, "reaped: gone")
    }

    /// What PrivilegeDrop checks after the change of user: root has capabilities, a user
    /// that dropped them has none.
    @Test func capabilitiesGoWithTheChangeOfUser() throws {
        try #require(geteuid() == 0, "runs as root (CI does): it changes users")
        #expect(forklift_keeps_capabilities() == 1, "root holds capabilities")
        let child = forklift_fork()
        if child == 0 {
            _ = forklift_clear_keep_capabilities()
            if forklift_set_all_uids(65534) != 0 { _exit(2) }
            _exit(forklift_keeps_capabilities() == 0 ? 0 : 1)
        }
        try #require(child > 0)
        var status: Int32 = 0
        while waitpid(child, &status, 0) == -1 && errno == EINTR {}
        #expect(status == 0, "exit status \(status >> 8): 1 = capabilities left, 2 = could not drop root")
    }
}
