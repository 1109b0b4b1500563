import CForkliftSys
import ForkliftSystem
import Glibc

/// The epoll set a worker waits in between the requests of a kept connection: the connection
/// is registered once for as long as it is kept, so that a kept request's wait is one
/// epoll_wait, where poll put an entry on the wait queues of the connection, the signal
/// descriptor, the listener and the parking channel on every request, and took them off again.
///
/// A connection must leave the set (`forget`) before it is sent to the master: the master's
/// copy would otherwise stay registered under its number (epoll drops a registration only
/// when the last descriptor of the open file is closed). The listener and the parking
/// channel are in the set only while the worker watches them from a kept connection (not
/// during a quiet period, when they would report a client some other worker takes, over and
/// over, nor between kept connections, when every new connection would call into the set).
final class KeptWaitSet {
    private let epoll: Int32
    private let listenFD: Int32
    private let parkFD: Int32
    private let signalFD: Int32
    /// The kept connection in the set.
    private var connection: Int32?
    private var watchingListener = false

    init(listenFD: Int32, parkFD: Int32, signalFD: Int32) throws {
        self.listenFD = listenFD
        self.parkFD = parkFD
        self.signalFD = signalFD
        epoll = try retryingSyscall("epoll_create1") { forklift_epoll_create() }
        try retryingSyscall("epoll_ctl(signal descriptor)") { forklift_epoll_add(epoll, signalFD, 0) }
    }

    deinit { close(epoll) }

    /// Waits for the next request on `kept` (and a client on the listener or the parking
    /// channel too, if `watchingListener`) or a signal, for at most `timeout` seconds.
    func wait(on kept: Int32, watchingListener watch: Bool, timeout: Double?) throws -> ConnectionWaiter.Events {
        if connection != kept {
            if let old = connection { forget(old) }
            try retryingSyscall("epoll_ctl(kept connection)") { forklift_epoll_add(epoll, kept, 0) }
            connection = kept
        }
        if watch != watchingListener { try watchListener(watch) } // at a kept connection's start, quiet periods' start and end
        var ready: (Int32, Int32, Int32, Int32) = (-1, -1, -1, -1)
        let count = withUnsafeMutableBytes(of: &ready) { forklift_epoll_wait(epoll, $0.baseAddress!.assumingMemoryBound(to: Int32.self), 4, pollTimeout(timeout)) }
        if count < 0 {
            if errno == EINTR { return .signal }
            throw SystemError("epoll_wait")
        }
        if count == 0 { return timeout == nil ? [] : .timedOut }
        func event(_ fd: Int32) -> ConnectionWaiter.Events {
            fd == kept ? .connectionReadable : fd == signalFD ? .signal : fd == listenFD ? .listenerReadable : .parkedReadable
        }
        var events = event(ready.0) // no array per wait: this is on every kept request's path
        if count > 1 { events.insert(event(ready.1)) }
        if count > 2 { events.insert(event(ready.2)) }
        if count > 3 { events.insert(event(ready.3)) }
        return events
    }

    /// `fd` is no longer the kept connection: out of the set while it is still open (a
    /// descriptor already closed has left it by itself, unless the master holds a copy).
    func forget(_ fd: Int32) {
        guard connection == fd else { return }
        _ = forklift_epoll_del(epoll, fd)
        connection = nil
        if watchingListener { try? watchListener(false) }
    }

    private func watchListener(_ watch: Bool) throws {
        for fd in [listenFD, parkFD] where fd >= 0 {
            if watch { try retryingSyscall("epoll_ctl(listener)") { forklift_epoll_add(epoll, fd, 0) } } else { _ = forklift_epoll_del(epoll, fd) }
        }
        watchingListener = watch
    }
}
