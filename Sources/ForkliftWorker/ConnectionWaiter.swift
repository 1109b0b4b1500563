import CForkliftSys
import ForkliftSystem
import Glibc

/// Waits until the listening socket has a connection or a signal arrived.
///
/// The listening socket is registered with EPOLLEXCLUSIVE, so one connection wakes one idle
/// worker rather than all of them. While libfcgi keeps a connection open (FCGI_KEEP_CONN),
/// the worker waits on that connection instead.
struct ConnectionWaiter {
    enum Event { case listenerReadable, connectionReadable, signal }

    private let epoll: Int32
    private let listenFD: Int32
    private let signalFD: Int32

    init(listenFD: Int32, signalFD: Int32) throws {
        self.listenFD = listenFD
        self.signalFD = signalFD
        epoll = try retryingSyscall("epoll_create1") { forklift_epoll_create() }
        try retryingSyscall("epoll_ctl(listener)") { forklift_epoll_add(epoll, listenFD, 1) }
        try retryingSyscall("epoll_ctl(signal pipe)") { forklift_epoll_add(epoll, signalFD, 0) }
    }

    /// Waits for the listener (or `keptConnection`, when libfcgi holds one) or a signal.
    func wait(keptConnection: Int32?) throws -> Set<Event> {
        if let connection = keptConnection {
            let ready = try waitReadable([connection, signalFD], timeoutSeconds: nil)
            var events: Set<Event> = []
            if ready.contains(connection) { events.insert(.connectionReadable) }
            if ready.contains(signalFD) { events.insert(.signal) }
            return events
        }
        var ready: [Int32] = [-1, -1]
        let count = forklift_epoll_wait(epoll, &ready, 2, -1)
        if count < 0 {
            if errno == EINTR { return [.signal] }
            throw SystemError("epoll_wait")
        }
        var events: Set<Event> = []
        for fd in ready.prefix(Int(count)) {
            events.insert(fd == listenFD ? .listenerReadable : .signal)
        }
        return events
    }
}
