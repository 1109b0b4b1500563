import CForkliftSys
import Foundation
@testable import ForkliftIPC
import ForkliftSystem
import ForkliftStatus
import Testing

@Suite struct ScoreboardTests {
    @Test func aWorkersSlotReadsBackWhatItWrote() throws {
        let board = try GenerationBoard(capacity: 4)
        let slot = board.slot(2)
        let t0 = MonotonicInstant.now()
        slot.prepare(now: t0)
        slot.claim(pid: 4242, now: t0)
        slot.set(.idle, now: t0)
        board.publish(HostState(hostPID: 1, workerTarget: 4, highWater: 3))
        let method = Array("POST".utf8), uri = Array("/a?b=c".utf8), plugin = Array("echo".utf8)
        method.withUnsafeBytes { m in uri.withUnsafeBytes { u in plugin.withUnsafeBytes { p in
            slot.markRunning(method: m, uri: u, plugin: p, contentLength: 12, now: t0)
        } } }
        var snapshot = BoardReader.read(board)
        let running = try #require(snapshot.workers.first)
        #expect(snapshot.workers.count == 1 && running.slot == 2 && running.pid == 4242)
        #expect(running.state == .running && running.method == "POST" && running.uri == "/a?b=c" && running.plugin == "echo")
        #expect(running.contentLength == 12)
        #expect(snapshot.active == 1 && snapshot.idle == 0 && snapshot.total == 1)
        slot.markDone(status: 201, cpuNanoseconds: 5_000_000, maxRSSKB: 1024, kept: false, now: t0.advanced(bySeconds: 0.5))
        snapshot = BoardReader.read(board, now: t0.advanced(bySeconds: 1))
        let done = try #require(snapshot.workers.first)
        #expect(done.state == .idle && done.requests == 1 && done.lastStatus == 201 && done.lastCPU == 0.005)
        slot.release()
        #expect(BoardReader.read(board).workers.isEmpty)
    }

    @Test func theHostsStateReadsBackWithItsStandbysBesideTheCondition() throws {
        let board = try GenerationBoard(capacity: 4)
        let state = HostState(hostPID: 7, condition: .backingOff, consecutiveFailures: 3, workerTarget: 2, highWater: 3, atCeiling: true, standbyWorkers: 2)
        board.publish(state)
        let read = try #require(BoardReader.read(board).hostState)
        #expect(read.condition == .backingOff && read.atCeiling && read.standbyWorkers == 2, "\(read)")
        #expect(read.consecutiveFailures == 3 && read.workerTarget == 2 && read.highWater == 3)
        board.publish(HostState(hostPID: 7, standbyWorkers: 0))
        let none = try #require(BoardReader.read(board).hostState)
        #expect(none.standbyWorkers == 0 && none.condition == .normal && !none.atCeiling)
    }

    @Test func theSwitchFlagsAndTheMastersWords() throws {
        let board = try GenerationBoard(capacity: 2)
        let slot = board.slot(1)
        #expect(slot.enterWaiting(retiredBy: board) && board.waitingWorkers == 1)
        slot.leaveWaiting()
        #expect(board.waitingWorkers == 0)
        // A worker killed while waiting: the host's release at the reap clears its flag.
        #expect(slot.enterWaiting(retiredBy: board))
        slot.release()
        #expect(board.waitingWorkers == 0, "no flag left behind by a dead worker")
        board.retire()
        #expect(!slot.enterWaiting(retiredBy: board) && board.waitingWorkers == 0, "a retired generation's worker backs out")
        #expect(!board.isLive)
        board.markLive()
        #expect(board.isLive)
        board.setTarget(9)
        #expect(board.target == 2, "clamped to the board's capacity")
    }

    @Test func poolCountersAccumulateAndNeverReadNegative() throws {
        let counters = try PoolCounters()
        for _ in 0..<3 { counters.requestStarted() }
        counters.requestFinished()
        counters.storeListenQueue(length: 5, backlog: 128)
        counters.storeListenQueue(length: 2, backlog: 128)
        var record = counters.read()
        #expect(record.accepted == 3 && record.active == 2 && record.maxActive == 3)
        #expect(record.listenQueue == 2 && record.maxListenQueue == 5 && record.listenQueueLength == 128)
        counters.correctActive(by: -10)
        record = counters.read()
        #expect(record.active == 0, "a worker can write anything; the reader clamps")
    }

    /// Readers never see a torn slot: a writer thread hammers one slot with records whose
    /// fields all carry the same number, and every consistent read must agree with itself.
    @Test func readersNeverSeeATornSlot() throws {
        let board = try GenerationBoard(capacity: 1)
        let slot = board.slot(0)
        slot.prepare()
        board.publish(HostState(hostPID: 1, highWater: 1))
        // flags[0]: stop, flags[1]: the writer has stopped (the board must outlive it).
        nonisolated(unsafe) let flags = UnsafeMutablePointer<Int32>.allocate(capacity: 2)
        flags.initialize(repeating: 0, count: 2)
        defer { flags.deallocate() }
        let writer = Thread {
            defer { forklift_atomic_store(flags + 1, 1) }
            var n: UInt64 = 1
            while forklift_atomic_load(flags) == 0 {
                let text = Array(String(n).utf8)
                text.withUnsafeBytes { bytes in
                    slot.markRunning(method: bytes, uri: bytes, plugin: bytes, contentLength: n, now: MonotonicInstant(nanoseconds: n))
                }
                n += 1
            }
        }
        writer.start()
        var reads = 0
        let until = Date().addingTimeInterval(0.5)
        while Date() < until {
            guard let record = BoardReader.read(board, now: MonotonicInstant(nanoseconds: .max)).workers.first, record.state == .running else { continue }
            let n = String(record.contentLength)
            #expect(record.method == String(n.prefix(16)) && record.uri == n && record.plugin == n && record.stateSince.nanoseconds == record.contentLength,
                    "a torn read: \(record)")
            reads += 1
        }
        forklift_atomic_store(flags, 1)
        while forklift_atomic_load(flags + 1) == 0 { usleep(1000) }
        _ = board // kept mapped until the writer is done
        #expect(reads > 100)
    }

    /// A worker can write anything into its own slot (and into the header). Whatever it
    /// writes, the reader neither crashes nor trusts it: sizes are clamped, texts bounded and
    /// cleaned, states valid, and a slot that stays torn is counted as unreadable.
    @Test(arguments: 0..<8)
    func garbageInASlotCannotCrashOrMisleadTheReader(seed: UInt64) throws {
        var generator = SplitMix(seed: seed)
        let board = try GenerationBoard(capacity: 4)
        for index in 0..<4 { board.slot(index).prepare() }
        for _ in 0..<200 {
            // Scribble over the header's host part and a random slot, as a hostile worker could.
            let slotBytes = UnsafeMutableRawBufferPointer(start: board.slot(Int(generator.next() % 4)).pointer,
                                                          count: MemoryLayout<forklift_worker_slot>.size)
            for index in 0..<slotBytes.count where generator.next() % 3 == 0 { slotBytes[index] = UInt8(truncatingIfNeeded: generator.next()) }
            if generator.next() % 4 == 0 {
                // All of the header, its slot count included (a worker can write it; nothing may
                // take a size or an offset from it).
                let header = UnsafeMutableRawBufferPointer(start: board.header, count: MemoryLayout<forklift_board_header>.size)
                for index in 0..<header.count where generator.next() % 2 == 0 { header[index] = UInt8(truncatingIfNeeded: generator.next()) }
            }
            let now = MonotonicInstant(nanoseconds: 1 << 40)
            let snapshot = BoardReader.read(board, now: now)
            #expect(snapshot.workers.count + snapshot.unreadable <= 4)
            #expect(snapshot.idle + snapshot.active == snapshot.total)
            for worker in snapshot.workers {
                #expect(worker.slot >= 0 && worker.slot < 4)
                #expect(worker.method.utf8.count <= 16 * 3 && worker.uri.utf8.count <= 256 * 3 && worker.plugin.utf8.count <= 64 * 3)
                #expect(!worker.uri.unicodeScalars.contains { $0.value < 0x20 }, "no control characters reach a log or a terminal")
                #expect(worker.spawned <= now && worker.requestStarted <= now && worker.heartbeat <= now)
                #expect(worker.lastDuration >= 0 && worker.lastStatus <= 999 && worker.requests >= 0)
                #expect(worker.state != .free)
            }
            if let host = snapshot.hostState {
                #expect(host.highWater <= 4 && host.workerTarget <= 4)
            }
        }
    }
}

/// A small deterministic generator, so that a failing seed can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The bug this guards: a slot with a valid state and its own pid but huge figures (a worker
/// can write any) made the status renderers' arithmetic trap, in the master too.
@Suite struct HostileFiguresTests {
    @Test func hugeFiguresInAValidSlotRenderInEveryFormat() throws {
        let board = try GenerationBoard(capacity: 2)
        let slot = board.slot(0)
        slot.prepare()
        slot.claim(pid: 77)
        slot.set(.running)
        board.publish(HostState(hostPID: 1, workerTarget: 2, highWater: 1))
        let raw = slot.pointer
        raw.pointee.max_rss_kb = .max
        raw.pointee.requests = .max
        raw.pointee.content_length = .max
        raw.pointee.last_cpu_ns = 1 << 62
        raw.pointee.last_duration_ns = 1
        raw.pointee.request_started_ns = 0
        raw.pointee.state = WorkerState.idle.rawValue
        board.storeMemory(slot: 0, pid: 77, pssKB: .max, privateDirtyKB: .max, sharedKB: .max)
        board.storeHostMemory(pssKB: .max, privateDirtyKB: .max)
        let counters = try PoolCounters()
        counters.correctActive(by: .max)
        let snapshot = BoardReader.read(board)
        let worker = try #require(snapshot.workers.first)
        #expect(worker.maxRSSKB <= 1 << 32 && (worker.memory?.pssKB ?? 0) <= 1 << 32)
        let status = PoolStatus(pool: "www", processManager: "static", generation: 1, role: "live", counters: counters.read(),
                                board: snapshot, maxChildren: 2, slowlogTimeout: 1)
        for format in StatusFormat.allCases {
            for full in [false, true] {
                #expect(!StatusPage.render(status, format: format, full: full).isEmpty)
            }
        }
    }
}
