import CForkliftSys
import ForkliftSystem
import Glibc

/// One worker as its slot said at one moment, checked: every length clamped, every text
/// stripped of control characters, every time no later than the reading.
public struct WorkerRecord: Equatable, Sendable {
    public var slot: Int
    public var pid: pid_t
    public var state: WorkerState
    public var spawned: MonotonicInstant
    public var stateSince: MonotonicInstant
    public var heartbeat: MonotonicInstant
    public var requests: Int
    /// When the current (or last) request started.
    public var requestStarted: MonotonicInstant
    public var contentLength: Int
    /// The last finished request.
    public var lastDuration: Double
    public var lastCPU: Double
    public var lastStatus: Int
    public var maxRSSKB: Int
    public var method: String
    public var uri: String
    public var plugin: String
    /// The host's last memory sample of this worker, if it made one.
    public var memory: MemorySample?

    /// How long the current request has run, if one runs.
    public func requestAge(at now: MonotonicInstant) -> Double? {
        state.isActive ? max(0, requestStarted.seconds(until: now)) : nil
    }
}

public struct MemorySample: Equatable, Sendable {
    public var sampled: MonotonicInstant
    public var pssKB: Int
    public var privateDirtyKB: Int
    public var sharedKB: Int
}

public struct HostMemory: Equatable, Sendable {
    public var pssKB: Int
    public var privateDirtyKB: Int
}

/// A host's board at one moment.
public struct BoardSnapshot: Equatable, Sendable {
    public var taken: MonotonicInstant
    public var hostState: HostState?
    /// The host's own memory (Pss, Private_Dirty), at its last sample.
    public var hostMemory: HostMemory?
    public var started: MonotonicInstant
    /// Every slot with a process in it, by slot.
    public var workers: [WorkerRecord]
    /// Slots that could not be read consistently, or said nonsense (a worker that scribbles).
    public var unreadable: Int

    public var idle: Int { workers.filter { !$0.state.isActive }.count }
    public var active: Int { workers.filter { $0.state.isActive }.count }
    /// idle + active, by construction.
    public var total: Int { workers.count }
}

/// Reads a board as untrusted input: the reader never follows anything in it, never trusts
/// its sizes, and turns whatever it finds into checked values.
public enum BoardReader {
    public static func read(_ board: GenerationBoard, now: MonotonicInstant = .now()) -> BoardSnapshot {
        var header = forklift_board_header()
        let hostState = forklift_header_read(board.header, &header) == 1 ? hostState(from: header, board: board, now: now) : nil
        // Only the slots the host says it used, but never beyond what the master mapped.
        let used = min(hostState?.highWater ?? board.capacity, board.capacity)
        var workers: [WorkerRecord] = []
        var unreadable = 0
        for index in 0..<used {
            var copy = forklift_worker_slot()
            guard forklift_slot_read(board.slot(index).pointer, &copy) == 1 else {
                unreadable += 1
                continue
            }
            if copy.state == WorkerState.free.rawValue { continue }
            guard copy.state < WorkerState.allCases.count, copy.pid >= 0 else {
                unreadable += 1
                continue
            }
            var record = worker(from: copy, slot: index, now: now)
            var sample = forklift_slot_memory()
            if forklift_memory_read(board.memory(index), &sample) == 1, sample.sampled_ns > 0, sample.pid == copy.pid {
                record.memory = MemorySample(sampled: clampedInstant(sample.sampled_ns, now), pssKB: clampedKB(sample.pss_kb),
                                             privateDirtyKB: clampedKB(sample.private_dirty_kb), sharedKB: clampedKB(sample.shared_kb))
            }
            workers.append(record)
        }
        let hostMemory = hostState != nil && header.host_pss_kb > 0
            ? HostMemory(pssKB: clampedKB(header.host_pss_kb), privateDirtyKB: clampedKB(header.host_private_dirty_kb)) : nil
        return BoardSnapshot(taken: now, hostState: hostState, hostMemory: hostMemory,
                             started: clampedInstant(board.header.pointee.started_ns, now), workers: workers, unreadable: unreadable)
    }

    /// One slot (the host reads a worker's last words after the reap), nil if free or unreadable.
    public static func read(slot index: Int, of board: GenerationBoard, now: MonotonicInstant = .now()) -> WorkerRecord? {
        var copy = forklift_worker_slot()
        guard forklift_slot_read(board.slot(index).pointer, &copy) == 1, copy.state != WorkerState.free.rawValue,
              copy.state < WorkerState.allCases.count else { return nil }
        return worker(from: copy, slot: index, now: now)
    }

    static func hostState(from header: forklift_board_header, board: GenerationBoard, now: MonotonicInstant) -> HostState {
        HostState(hostPID: header.host_pid,
                  condition: HostState.Condition(rawValue: header.pool_state & 0xFF) ?? .normal,
                  consecutiveFailures: Int(header.consecutive_failures),
                  backoffUntil: header.backoff_until_ns == 0 ? nil : MonotonicInstant(nanoseconds: header.backoff_until_ns),
                  allBusySince: header.all_busy_since_ns == 0 ? nil : clampedInstant(header.all_busy_since_ns, now),
                  workerTarget: max(0, min(Int(header.effective_target), board.capacity)),
                  highWater: min(Int(header.high_water), board.capacity), atCeiling: header.pool_state & 0x100 != 0,
                  standbyWorkers: Int(header.pool_state >> 16))
    }

    static func worker(from slot: forklift_worker_slot, slot index: Int, now: MonotonicInstant) -> WorkerRecord {
        var copy = slot
        let method = withUnsafeBytes(of: &copy.method) { text($0, length: slot.method_len) }
        let uri = withUnsafeBytes(of: &copy.uri) { text($0, length: slot.uri_len) }
        let plugin = withUnsafeBytes(of: &copy.plugin) { text($0, length: slot.plugin_len) }
        return WorkerRecord(
            slot: index, pid: slot.pid, state: WorkerState(raw: slot.state),
            spawned: clampedInstant(slot.spawned_ns, now), stateSince: clampedInstant(slot.state_since_ns, now),
            heartbeat: clampedInstant(slot.heartbeat_ns, now), requests: clamped(slot.requests),
            requestStarted: clampedInstant(slot.request_started_ns, now), contentLength: clamped(slot.content_length),
            lastDuration: Double(min(slot.last_duration_ns, 1 << 48)) / 1e9, lastCPU: Double(min(slot.last_cpu_ns, 1 << 48)) / 1e9,
            lastStatus: Int(min(slot.last_status, 999)), maxRSSKB: clampedKB(slot.max_rss_kb),
            method: method, uri: uri, plugin: plugin, memory: nil)
    }

    /// At most `length` bytes (and never more than the field), as UTF-8 with invalid bytes
    /// replaced and control characters shown as "?": it ends up in logs and terminals.
    static func text(_ field: UnsafeRawBufferPointer, length: UInt32) -> String {
        let bytes = field.prefix(min(Int(length), field.count))
        let decoded = String(decoding: bytes, as: UTF8.self)
        return String(decoded.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
    }

    /// Counts and sizes a worker can write: below 2^48, so that sums and products of them in
    /// the renderers (a status page adds and multiplies) can never overflow and trap.
    static func clamped(_ value: UInt64) -> Int { Int(min(value, 1 << 48)) }

    /// Kibibytes: at most 2^32 (4 TiB), so that bytes summed over every worker stay far below 2^63.
    static func clampedKB(_ value: UInt64) -> Int { Int(min(value, 1 << 32)) }

    static func clampedInstant(_ nanoseconds: UInt64, _ now: MonotonicInstant) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: min(nanoseconds, now.nanoseconds))
    }
}
