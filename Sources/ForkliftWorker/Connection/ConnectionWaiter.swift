import CForkliftSys
import ForkliftLogging
import ForkliftSystem
import Glibc

/// Waits for what a worker serves next: a connection on the listening socket, or the next
/// request on a connection the client keeps open; and for signals.
///
/// The listening socket and the parking channel (connections the master sends back with a
/// request on them) are registered with EPOLLEXCLUSIVE, so one connection wakes one idle
/// worker rather than all of them. A worker on a kept connection waits on that connection, and
/// also (not exclusively) on both, so that it can give its idle kept connection up when a
/// client would otherwise wait for a worker; in a set of its own (`KeptWaitSet`).
///
/// With `process_scheduling = "batch-when-idle"` (the default) a wait that blocks is made under
/// SCHED_BATCH, and the worker is back to SCHED_OTHER as soon as it wakes: the connection that
/// wakes it then does not preempt the web server that made it (on the same core, between its
/// connect and its send), and the request is served at normal priority (what it gains and
/// costs: BENCHMARKS.md, "process_scheduling = batch-when-idle"). A wait that need not block
/// (a client already waits) costs no more than before: the first look is a wait of no time.
struct ConnectionWaiter {
    /// What woke the worker; a set of flags, so that a wait allocates nothing (it is on the
    /// request path of every kept connection).
    struct Events: OptionSet {
        let rawValue: UInt8
        static let listenerReadable = Events(rawValue: 1)
        static let parkedReadable = Events(rawValue: 2)
        static let connectionReadable = Events(rawValue: 4)
        static let signal = Events(rawValue: 8)
        static let timedOut = Events(rawValue: 16)
    }

    private let epoll: Int32
    /// Where the waits on a kept connection happen.
    let keptSet: KeptWaitSet
    private let listenFD: Int32
    private let parkFD: Int32
    private let signalFD: Int32
    /// Blocking waits under SCHED_BATCH (see above); off for good should a switch fail.
    private(set) var batchWhenIdle: Bool

    init(listenFD: Int32, parkFD: Int32, signalFD: Int32, batchWhenIdle: Bool = false) throws {
        self.listenFD = listenFD
        self.parkFD = parkFD
        self.signalFD = signalFD
        self.batchWhenIdle = batchWhenIdle
        keptSet = try KeptWaitSet(listenFD: listenFD, parkFD: parkFD, signalFD: signalFD)
        let epoll = try retryingSyscall("epoll_create1") { forklift_epoll_create() }
        self.epoll = epoll
        try retryingSyscall("epoll_ctl(listener)") { forklift_epoll_add(epoll, listenFD, 1) }
        if parkFD >= 0 { try retryingSyscall("epoll_ctl(parking channel)") { forklift_epoll_add(epoll, parkFD, 1) } }
        try retryingSyscall("epoll_ctl(signal pipe)") { forklift_epoll_add(epoll, signalFD, 0) }
    }

    /// Waits for the listener, the parking channel or a signal.
    mutating func waitForConnection() throws -> Events {
        var ready: (Int32, Int32, Int32) = (-1, -1, -1)
        var count = wait(into: &ready, timeout: batchWhenIdle ? 0 : -1)
        if count == 0 && batchWhenIdle { count = waitUnderBatch(into: &ready) }
        if count < 0 {
            if errno == EINTR { return .signal }
            throw SystemError("epoll_wait")
        }
        var events: Events = []
        if count > 0 { events.insert(event(ready.0)) }
        if count > 1 { events.insert(event(ready.1)) }
        if count > 2 { events.insert(event(ready.2)) }
        return events
    }

    private func wait(into ready: inout (Int32, Int32, Int32), timeout: Int32) -> Int32 {
        withUnsafeMutableBytes(of: &ready) { forklift_epoll_wait(epoll, $0.baseAddress!.assumingMemoryBound(to: Int32.self), 3, timeout) }
    }

    /// The blocking wait, under SCHED_BATCH; SCHED_OTHER again before anything else is done
    /// (errno kept for the caller). A switch that fails (a seccomp filter, say) is logged and
    /// turns the scheme off: this worker goes on under the class it has then, SCHED_OTHER if
    /// the switch to batch failed, SCHED_BATCH if the way back did.
    private mutating func waitUnderBatch(into ready: inout (Int32, Int32, Int32)) -> Int32 {
        do {
            try CPUPriority.set(.batch, of: 0)
        } catch {
            batchWhenIdle = false
            ForkliftLogging.logger.warning("worker \(getpid()) waits for connections at normal priority: \(error) (process_scheduling = \"batch-when-idle\")")
            return wait(into: &ready, timeout: -1)
        }
        let count = wait(into: &ready, timeout: -1)
        let waitErrno = errno
        do {
            try CPUPriority.set(.normal, of: 0)
        } catch {
            batchWhenIdle = false
            ForkliftLogging.logger.error("worker \(getpid()) stays under SCHED_BATCH: \(error) (process_scheduling = \"batch-when-idle\")")
        }
        errno = waitErrno
        return count
    }

    /// Waits on a kept connection (and the listener and the parking channel too, if
    /// `watchingListener`) or a signal, for at most `timeout` seconds (nil: no limit).
    func waitOnKept(_ connection: Int32, watchingListener: Bool, timeout: Double?) throws -> Events {
        try keptSet.wait(on: connection, watchingListener: watchingListener, timeout: timeout)
    }

    /// Whether a client waits on the listener or the parking channel right now (no wait).
    func clientWaiting() -> Bool {
        let none = pollfd(fd: -1, events: 0, revents: 0)
        var fds = (pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), parkFD >= 0 ? pollfd(fd: parkFD, events: Int16(POLLIN), revents: 0) : none)
        return withUnsafeMutableBytes(of: &fds) { poll($0.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, 0) } > 0
    }

    private func event(_ fd: Int32) -> Events {
        fd == listenFD ? .listenerReadable : fd == parkFD ? .parkedReadable : .signal
    }
}
