import CForkliftSys
import ForkliftSystem
import Glibc

/// A pool's counters, shared by every generation of the pool for as long as it exists, so
/// that a reload does not reset them: requests accepted, the most workers active at once,
/// how often the pool ran out of workers. Workers and the live host write; the master and
/// the status page read, clamping every figure, since workers can write any of them.
public struct PoolCounters: @unchecked Sendable {
    public let mapping: SharedMapping
    let pointer: UnsafeMutablePointer<forklift_pool_counters>

    /// Master: when the pool first starts.
    public init(now: MonotonicInstant = .now()) throws {
        mapping = try SharedMapping(size: MemoryLayout<forklift_pool_counters>.stride)
        pointer = mapping.address.bindMemory(to: forklift_pool_counters.self, capacity: 1)
        pointer.pointee.magic = FORKLIFT_BOARD_MAGIC
        pointer.pointee.version = FORKLIFT_BOARD_VERSION
        pointer.pointee.started_realtime_s = Int64(time(nil))
        pointer.pointee.started_ns = Int64(now.nanoseconds)
    }

    // MARK: workers

    /// Worker: a request was accepted; this worker is active until `requestFinished`.
    public func requestStarted() {
        forklift_atomic_add64(&pointer.pointee.accepted, 1)
        let active = forklift_atomic_add64(&pointer.pointee.active, 1)
        forklift_atomic_max64(&pointer.pointee.max_active, active)
    }

    public func requestFinished() {
        forklift_atomic_add64(&pointer.pointee.active, -1)
    }

    // MARK: the host

    /// A worker died while active: it never said it finished.
    public func correctActive(by delta: Int) { forklift_atomic_add64(&pointer.pointee.active, Int64(delta)) }

    public func countMaxChildrenReached() { forklift_atomic_add64(&pointer.pointee.max_children_reached, 1) }
    public func countSlowRequest() { forklift_atomic_add64(&pointer.pointee.slow_requests, 1) }

    /// The live host's sample of its listen queue.
    public func storeListenQueue(length: Int, backlog: Int) {
        forklift_atomic_store64(&pointer.pointee.listen_queue, Int64(max(0, length)))
        forklift_atomic_store64(&pointer.pointee.listen_queue_len, Int64(max(0, backlog)))
        forklift_atomic_max64(&pointer.pointee.max_listen_queue, Int64(max(0, length)))
    }

    public func read() -> PoolCountersRecord {
        // Workers write these: never negative, never so large that a sum could overflow.
        func load(_ field: UnsafeMutablePointer<Int64>) -> Int { Int(min(max(0, forklift_atomic_load64(field)), 1 << 48)) }
        return PoolCountersRecord(
            startedRealtime: load(&pointer.pointee.started_realtime_s),
            started: MonotonicInstant(nanoseconds: UInt64(load(&pointer.pointee.started_ns))),
            accepted: load(&pointer.pointee.accepted),
            active: load(&pointer.pointee.active),
            maxActive: load(&pointer.pointee.max_active),
            maxChildrenReached: load(&pointer.pointee.max_children_reached),
            slowRequests: load(&pointer.pointee.slow_requests),
            listenQueue: load(&pointer.pointee.listen_queue),
            maxListenQueue: load(&pointer.pointee.max_listen_queue),
            listenQueueLength: load(&pointer.pointee.listen_queue_len))
    }
}

/// The pool's counters at one moment (PHP-FPM's status fields in brackets).
public struct PoolCountersRecord: Equatable, Sendable {
    /// Seconds since the epoch when the pool first started ("start time").
    public var startedRealtime: Int
    public var started: MonotonicInstant
    /// Requests accepted since the pool started ("accepted conn").
    public var accepted: Int
    /// Workers serving a request, by their own count (the status page counts slots instead).
    public var active: Int
    /// The most workers active at once ("max active processes").
    public var maxActive: Int
    /// Episodes of every worker busy at max_children with connections waiting ("max children reached").
    public var maxChildrenReached: Int
    /// Requests that ran past request_slowlog_timeout ("slow requests").
    public var slowRequests: Int
    /// Connections waiting to be accepted, at the last sample ("listen queue").
    public var listenQueue: Int
    /// The most seen waiting ("max listen queue").
    public var maxListenQueue: Int
    /// The listen queue's capacity ("listen queue len").
    public var listenQueueLength: Int

    public init(startedRealtime: Int = 0, started: MonotonicInstant = MonotonicInstant(nanoseconds: 0), accepted: Int = 0, active: Int = 0,
                maxActive: Int = 0, maxChildrenReached: Int = 0, slowRequests: Int = 0, listenQueue: Int = 0,
                maxListenQueue: Int = 0, listenQueueLength: Int = 0) {
        self.startedRealtime = startedRealtime
        self.started = started
        self.accepted = accepted
        self.active = active
        self.maxActive = maxActive
        self.maxChildrenReached = maxChildrenReached
        self.slowRequests = slowRequests
        self.listenQueue = listenQueue
        self.maxListenQueue = maxListenQueue
        self.listenQueueLength = listenQueueLength
    }
}
