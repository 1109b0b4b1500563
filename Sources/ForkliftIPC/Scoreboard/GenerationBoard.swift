import CForkliftSys
import ForkliftSystem
import Glibc

/// The scoreboard of one host process (one pool, one generation), in memory the master maps
/// before it forks the host: a header, and a slot per possible worker.
///
/// - The master writes `retired`, `live` and the scaling target; it reads the rest, and
///   trusts none of it (see `BoardReader`).
/// - Workers flag themselves `waiting` in their slot and keep the slot up to date.
/// - The host prepares a slot before it forks a worker into it and frees it after the reap,
///   and publishes its own state (back-off, all-busy) in the header.
///
/// `retired`, `live` and the slots' `waiting` flags make the switch to a new generation
/// strict. The master sets `retired`, TERMs the old generation, and opens the new one's gate
/// only once no slot is waiting: from then on no old worker can be woken for a connection, so
/// no client ever gets an answer from the old code after one from the new. (A worker checks
/// `retired` after raising its flag; with sequentially consistent atomics either the master
/// sees it waiting or it sees `retired`.)
public struct GenerationBoard: @unchecked Sendable {
    public let mapping: SharedMapping
    /// Slots, as the master sized it. Readers use this, never the count in shared memory.
    public let capacity: Int
    let header: UnsafeMutablePointer<forklift_board_header>

    /// Master: a fresh board for a host that may run up to `capacity` workers at once.
    public init(capacity: Int, now: MonotonicInstant = .now()) throws {
        precondition(capacity > 0 && capacity <= 1 << 20)
        mapping = try SharedMapping(size: forklift_board_size(UInt32(capacity)))
        self.capacity = capacity
        header = mapping.address.bindMemory(to: forklift_board_header.self, capacity: 1)
        header.pointee.magic = FORKLIFT_BOARD_MAGIC
        header.pointee.version = FORKLIFT_BOARD_VERSION
        header.pointee.slot_count = UInt32(capacity)
        header.pointee.slot_size = UInt32(MemoryLayout<forklift_worker_slot>.stride)
        header.pointee.started_ns = now.nanoseconds
    }

    // MARK: the master's words

    public var isRetired: Bool { forklift_atomic_load(&header.pointee.retired) != 0 }
    public var isLive: Bool { forklift_atomic_load(&header.pointee.live) != 0 }

    /// Master: this generation is no longer live.
    public func retire() { forklift_atomic_store(&header.pointee.retired, 1) }

    /// Master: this generation is committed; its workers may serve.
    public func markLive() { forklift_atomic_store(&header.pointee.live, 1) }

    /// Master: the scaling target (0: as configured). The host picks it up at its next tick.
    public func setTarget(_ workers: Int) {
        forklift_atomic_store(&header.pointee.target_workers, Int32(clamping: workers))
        forklift_atomic_add(withUnsafeMutablePointer(to: &header.pointee.target_seq) { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Int32.self) }, 1)
    }

    /// Host: the scaling target as the master set it, clamped (workers can write it too).
    public var target: Int { max(0, min(Int(forklift_atomic_load(&header.pointee.target_workers)), capacity)) }

    // MARK: waiting workers

    /// Master: workers between "about to wait for a connection" and "accept() returned", from
    /// their slots' flags (a worker killed while waiting is cleared by the host at the reap).
    public var waitingWorkers: Int {
        (0..<capacity).reduce(0) { $0 + (forklift_slot_waiting(forklift_board_slot(header, UInt32($1))) != 0 ? 1 : 0) }
    }

    /// Worker: whether its host may fork no more workers (or cannot say).
    public var hostAtCeiling: Bool {
        var copy = forklift_board_header()
        guard forklift_header_read(header, &copy) == 1 else { return true }
        return copy.pool_state & 0x100 != 0
    }

    /// Worker: claims the right to give its kept connection up for a new client; false if
    /// another claimed it within the last `maxAge` seconds (a claim of a worker that died with it
    /// lapses then).
    public func claimYield(now: MonotonicInstant = .now(), maxAge: Double = 0.1) -> Bool {
        forklift_board_claim_yield(header, now.nanoseconds, UInt64(maxAge * 1e9)) == 1
    }

    /// Worker: it gave way and listens now.
    public func releaseYield() { forklift_board_release_yield(header) }

    /// Workers waiting on the listener itself (not on a kept connection): whether a new client
    /// will be taken without one of the kept connections giving way.
    public var listeningWorkers: Int {
        (0..<capacity).reduce(0) { $0 + (forklift_slot_waiting(forklift_board_slot(header, UInt32($1))) == 1 ? 1 : 0) }
    }

    // MARK: slots

    public func slot(_ index: Int) -> WorkerSlot {
        precondition(index >= 0 && index < capacity, "slot \(index) of \(capacity)")
        return WorkerSlot(pointer: forklift_board_slot(header, UInt32(index)))
    }

    func memory(_ index: Int) -> UnsafeMutablePointer<forklift_slot_memory> {
        precondition(index >= 0 && index < capacity)
        return forklift_board_memory(header, UInt32(capacity), UInt32(index))
    }

    /// Host: what it measured of the worker in slot `index`.
    public func storeMemory(slot index: Int, pid: pid_t, pssKB: Int, privateDirtyKB: Int, sharedKB: Int, now: MonotonicInstant = .now()) {
        forklift_memory_store(memory(index), pid, now.nanoseconds, UInt64(max(0, pssKB)), UInt64(max(0, privateDirtyKB)), UInt64(max(0, sharedKB)))
    }

    // MARK: the host's state

    /// Host: publish its state.
    public func publish(_ state: HostState) {
        forklift_header_write_begin(header)
        header.pointee.host_pid = state.hostPID
        // The condition in the low byte; bit 8: no more workers may be forked (at the ceiling);
        // bits 16-31: standby workers waiting.
        header.pointee.pool_state = state.condition.rawValue | (state.atCeiling ? 0x100 : 0) | UInt32(min(max(0, state.standbyWorkers), 0xFFFF)) << 16
        header.pointee.consecutive_failures = UInt32(clamping: state.consecutiveFailures)
        header.pointee.backoff_until_ns = state.backoffUntil?.nanoseconds ?? 0
        header.pointee.all_busy_since_ns = state.allBusySince?.nanoseconds ?? 0
        header.pointee.effective_target = Int32(clamping: state.workerTarget)
        header.pointee.high_water = UInt32(clamping: state.highWater)
        forklift_header_write_end(header)
    }

    /// Host: its own memory, at its last sample.
    public func storeHostMemory(pssKB: Int, privateDirtyKB: Int) {
        forklift_header_write_begin(header)
        header.pointee.host_pss_kb = UInt64(max(0, pssKB))
        header.pointee.host_private_dirty_kb = UInt64(max(0, privateDirtyKB))
        forklift_header_write_end(header)
    }
}

/// What a host publishes about itself.
public struct HostState: Equatable, Sendable {
    public enum Condition: UInt32, Sendable {
        case normal = 0
        /// Workers die right after they start: new ones are forked with growing delays.
        case backingOff = 1
        case stopping = 2
    }

    public var hostPID: pid_t
    public var condition: Condition
    public var consecutiveFailures: Int
    public var backoffUntil: MonotonicInstant?
    public var allBusySince: MonotonicInstant?
    /// static: the workers it keeps; dynamic and ondemand: its ceiling.
    public var workerTarget: Int
    /// Slots below this index have been used.
    public var highWater: Int
    /// As many workers as it may have, and none of them still starting: a new client gets a
    /// worker only if one is free, or a kept connection gives way.
    public var atCeiling: Bool = false
    /// Standby workers past their worker init, waiting to take a place (standby_workers).
    public var standbyWorkers: Int = 0

    public init(hostPID: pid_t, condition: Condition = .normal, consecutiveFailures: Int = 0, backoffUntil: MonotonicInstant? = nil,
                allBusySince: MonotonicInstant? = nil, workerTarget: Int = 0, highWater: Int = 0, atCeiling: Bool = false, standbyWorkers: Int = 0) {
        self.atCeiling = atCeiling
        self.standbyWorkers = standbyWorkers
        self.hostPID = hostPID
        self.condition = condition
        self.consecutiveFailures = consecutiveFailures
        self.backoffUntil = backoffUntil
        self.allBusySince = allBusySince
        self.workerTarget = workerTarget
        self.highWater = highWater
    }
}

/// One worker's slot: the host prepares and releases it, the worker writes it in between.
public struct WorkerSlot: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<forklift_worker_slot>

    /// Host, before the fork.
    public func prepare(now: MonotonicInstant = .now()) { forklift_slot_prepare(pointer, 0, now.nanoseconds) }
    /// Host, after the reap.
    public func release() { forklift_slot_release(pointer) }

    /// Worker, first thing after the fork.
    public func claim(pid: pid_t, now: MonotonicInstant = .now()) { forklift_slot_set_pid(pointer, pid, now.nanoseconds) }

    public func set(_ state: WorkerState, now: MonotonicInstant = .now()) {
        forklift_slot_set_state(pointer, state.rawValue, now.nanoseconds)
    }

    /// The request started at `started` (when the worker began reading it).
    public func markReading(now: MonotonicInstant) {
        pointer.pointee.request_started_ns = now.nanoseconds // before the state: a reader sees the start with "reading"
        forklift_slot_set_state(pointer, WorkerState.reading.rawValue, now.nanoseconds)
    }

    /// The request's line, once its params are read: the state becomes running.
    public func markRunning(method: UnsafeRawBufferPointer, uri: UnsafeRawBufferPointer, plugin: UnsafeRawBufferPointer,
                            contentLength: UInt64, now: MonotonicInstant) {
        forklift_slot_begin_request(pointer, now.nanoseconds,
                                    method.baseAddress?.assumingMemoryBound(to: CChar.self), method.count,
                                    uri.baseAddress?.assumingMemoryBound(to: CChar.self), uri.count,
                                    plugin.baseAddress?.assumingMemoryBound(to: CChar.self), plugin.count,
                                    contentLength)
    }

    /// The request is done: idle again (or kept, between requests on a kept connection), one
    /// more served.
    public func markDone(status: Int, cpuNanoseconds: UInt64, maxRSSKB: UInt64, kept: Bool, now: MonotonicInstant) {
        forklift_slot_end_request(pointer, now.nanoseconds, UInt32(clamping: status), cpuNanoseconds, maxRSSKB,
                                  (kept ? WorkerState.kept : WorkerState.idle).rawValue)
    }

    /// Worker: about to wait for a connection (on the listener, or the next request on a kept
    /// one). Returns false (and backs out) if its generation was retired (see `GenerationBoard`).
    public func enterWaiting(retiredBy board: GenerationBoard, kept: Bool = false) -> Bool {
        forklift_slot_set_waiting(pointer, kept ? 2 : 1)
        if board.isRetired {
            leaveWaiting()
            return false
        }
        return true
    }

    /// Worker: done waiting (accept() returned, or it gave up).
    public func leaveWaiting() { forklift_slot_set_waiting(pointer, 0) }
}
