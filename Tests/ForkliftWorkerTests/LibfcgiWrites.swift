import CForkliftSys
import Foundation

/// The writes libfcgi makes through OS_Write (connection_io.c) while `body` runs: the count
/// is the process's, so those that measure it take turns.
enum LibfcgiWrites {
    private static let lock = NSLock()

    static func count(_ body: () throws -> Void) rethrows -> UInt {
        lock.lock()
        defer { lock.unlock() }
        let before = forklift_io_writes()
        try body()
        return forklift_io_writes() - before
    }
}
