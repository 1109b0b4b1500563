import CForkliftSys
import ForkliftSystem
import Glibc

/// Waits for what a worker serves next: a connection on the listening socket, or the next
/// request on a connection the client keeps open; and for signals.
///
/// The listening socket and the parking channel (connections the master sends back with a
/// request on them) are registered with EPOLLEXCLUSIVE, so one connection wakes one idle
/// worker rather than all of them. A worker on a kept connection waits on that connection, and
/// also (not exclusively) on both, so that it can give its idle kept connection up when a
/// client would otherwise wait for a worker.
struct ConnectionWaiter {
    enum Event: Equatable { case listenerReadable, parkedReadable, connectionReadable, signal, timedOut }

    private let epoll: Int32
    private let listenFD: Int32
    private let parkFD: Int32
    private let signalFD: Int32

    init(listenFD: Int32, parkFD: Int32, signalFD: Int32) throws {
        self.listenFD = listenFD
        self.parkFD = parkFD
        self.signalFD = signalFD
        epoll = try retryingSyscall("epoll_create1") { forklift_epoll_create() }
        try retryingSyscall("epoll_ctl(listener)") { forklift_epoll_add(epoll, listenFD, 1) }
        if parkFD >= 0 { try retryingSyscall("epoll_ctl(parking channel)") { forklift_epoll_add(epoll, parkFD, 1) } }
        try retryingSyscall("epoll_ctl(signal pipe)") { forklift_epoll_add(epoll, signalFD, 0) }
    }

    /// Waits for the listener, the parking channel or a signal.
    func waitForConnection() throws -> [Event] {
        var ready: [Int32] = [-1, -1, -1]
        let count = forklift_epoll_wait(epoll, &ready, 3, -1)
        if count < 0 {
            if errno == EINTR { return [.signal] }
            throw SystemError("epoll_wait")
        }
        return ready.prefix(Int(count)).map(event)
    }

    /// Waits on a kept connection (and the listener and the parking channel too, if
    /// `watchingListener`) or a signal, for at most `timeout` seconds (nil: no limit).
    func waitOnKept(_ connection: Int32, watchingListener: Bool, timeout: Double?) throws -> [Event] {
        var fds = [connection, signalFD]
        if watchingListener { fds += parkFD >= 0 ? [listenFD, parkFD] : [listenFD] }
        let ready = try waitReadable(fds, timeoutSeconds: timeout)
        if ready.isEmpty, let timeout, timeout >= 0 { return [.timedOut] }
        return ready.map { $0 == connection ? .connectionReadable : event($0) }
    }

    private func event(_ fd: Int32) -> Event {
        fd == listenFD ? .listenerReadable : fd == parkFD ? .parkedReadable : .signal
    }
}
