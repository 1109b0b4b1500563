import Glibc

/// poll(2) over a few descriptors for readability. Returns the descriptors that are readable
/// (or hung up); an interrupted wait returns an empty list, so the caller re-checks its signals.
public func waitReadable(_ fds: [Int32], timeoutSeconds: Double?) throws -> [Int32] {
    var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    let timeout: Int32 = timeoutSeconds.map { Int32(min(max(0, $0 * 1000).rounded(.up), 3_600_000)) } ?? -1
    let count = poll(&entries, nfds_t(entries.count), timeout)
    if count < 0 {
        if errno == EINTR { return [] }
        throw SystemError("poll")
    }
    return entries.filter { $0.revents != 0 }.map(\.fd)
}
