import Glibc

/// poll(2) over a few descriptors for readability. Returns the descriptors that are readable
/// (or hung up); an interrupted wait returns an empty list, so the caller re-checks its signals.
///
/// On a worker's request path (kept connections wait here): no dictionary, one array.
public func waitReadable(_ fds: [Int32], timeoutSeconds: Double?) throws -> [Int32] {
    var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    let count = poll(&entries, nfds_t(entries.count), pollTimeout(timeoutSeconds))
    if count < 0 {
        if errno == EINTR { return [] }
        throw SystemError("poll")
    }
    return count == 0 ? [] : entries.filter { $0.revents != 0 }.map(\.fd)
}

/// Milliseconds for poll(2), rounded up: a deadline 0.3 ms away must not become a zero
/// timeout, a busy loop.
public func pollTimeout(_ seconds: Double?) -> Int32 {
    seconds.map { Int32(min(max(0, $0 * 1000).rounded(.up), 3_600_000)) } ?? -1
}

/// What to wait for on one descriptor.
public struct PollRequest: Sendable {
    public let fd: Int32
    public let readable: Bool
    public let writable: Bool

    public init(fd: Int32, readable: Bool = false, writable: Bool = false) {
        self.fd = fd
        self.readable = readable
        self.writable = writable
    }
}

/// What poll(2) said of one descriptor.
public struct PollResult: Sendable {
    public let readable: Bool
    public let writable: Bool
    /// Hung up or in error: reading or writing it now tells how.
    public let closed: Bool
}

/// poll(2) over several descriptors; the ones with something to report. An interrupted wait
/// returns none, so the caller re-checks its signals.
public func waitForEvents(_ requests: [PollRequest], timeoutSeconds: Double?) throws -> [Int32: PollResult] {
    var entries = requests.map {
        pollfd(fd: $0.fd, events: Int16(($0.readable ? POLLIN : 0) | ($0.writable ? POLLOUT : 0)), revents: 0)
    }
    let count = poll(&entries, nfds_t(entries.count), pollTimeout(timeoutSeconds))
    if count < 0 {
        if errno == EINTR { return [:] }
        throw SystemError("poll")
    }
    var results: [Int32: PollResult] = [:]
    for entry in entries where entry.revents != 0 {
        let events = Int32(entry.revents)
        results[entry.fd] = PollResult(readable: events & Int32(POLLIN) != 0, writable: events & Int32(POLLOUT) != 0,
                                       closed: events & Int32(POLLHUP | POLLERR | POLLNVAL) != 0)
    }
    return results
}
