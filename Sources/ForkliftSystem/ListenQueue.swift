import CForkliftSys

/// A listening socket's accept queue: connections waiting, and its capacity. For TCP and, unlike
/// PHP-FPM (which reports 0 there), for unix sockets too.
public enum ListenQueue {
    public static func measure(_ fd: Int32) -> (waiting: Int, backlog: Int)? {
        var waiting: UInt32 = 0
        var backlog: UInt32 = 0
        guard forklift_listen_queue(fd, &waiting, &backlog) == 0 else { return nil }
        return (Int(waiting), Int(backlog))
    }
}
