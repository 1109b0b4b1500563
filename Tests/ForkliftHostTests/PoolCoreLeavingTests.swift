import ForkliftConfig
@testable import ForkliftHost
import ForkliftIPC
import ForkliftSystem
import Glibc
import Testing

/// "leaving PID": a worker that leaves of its own accord (max_requests, a stop signal that was
/// not the host's) is replaced when it says so, before it is reaped; never twice, and never
/// when the pool would not replace it at its exit.
@Suite struct PoolCoreLeavingTests {
    @Test func aStaticWorkerIsReplacedWhenItSaysItIsLeavingAndNotAgainAtItsExit() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        let first = pool.forkedPIDs[0]
        let leaving = pool.send(.workerLeaving(pid: first))
        #expect(leaving.forks.count == 1, "\(leaving)")
        #expect(leaving.forks.first.map { $0 != pool.slots[first] } == true, "a slot of its own: the old one is the leaving worker's until the reap")
        #expect(pool.staying.count == 2, "the replacement stays, the leaving worker does not count")
        #expect(pool.workerPIDs.count == 3)
        // The same line again forks nothing more.
        #expect(pool.send(.workerLeaving(pid: first)).forks.isEmpty)
        let exited = pool.exit(first, served: true)
        #expect(exited.forks.isEmpty, "replaced already: \(exited)")
        #expect(exited.logs(.info, containing: "worker \(first) retired after serving its requests; its replacement was started as it left").count == 1)
        #expect(pool.workerPIDs.count == 2)
        #expect(pool.tickSeconds(3).forks.isEmpty, "the pool is at its size")
    }

    @Test func aDynamicWorkerIsReplacedOnceWhenItSaysItIsLeaving() {
        var pool = PoolDriver(poolSettings(.dynamic, maxChildren: 8) {
            $0.minSpareServers = 1
            $0.maxSpareServers = 3
            $0.startServers = 2
        })
        pool.startServing()
        let first = pool.forkedPIDs[0]
        #expect(pool.send(.workerLeaving(pid: first)).forks.count == 1)
        #expect(pool.exit(first, served: true).forks.isEmpty, "owed once, paid once")
        #expect(pool.core.replacementsOwed == 0)
        #expect(pool.workerPIDs.count == 2)
    }

    @Test func aWorkerTheHostToldToLeaveIsNotReplacedEarly() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        let pids = pool.forkedPIDs
        // Recycled for its memory: replaced once it is gone, so the pool never holds more than its size.
        pool.core.dismiss(pids[0], as: .memory)
        #expect(pool.send(.workerLeaving(pid: pids[0])).forks.isEmpty)
        #expect(pool.exit(pids[0]).forks.count == 1, "replaced at its exit, as before")
        // Scaled down: not replaced at all.
        pool.core.dismiss(pids[1], as: .scaledDown)
        #expect(pool.send(.workerLeaving(pid: pids[1])).forks.isEmpty)
    }

    @Test func nothingIsReplacedEarlyWhileStopping() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        pool.send(.stop)
        let pids = pool.forkedPIDs
        #expect(pool.send(.workerLeaving(pid: pids[0])).forks.isEmpty)
        #expect(pool.exit(pids[0]).forks.isEmpty)
        #expect(pool.send(.workerLeaving(pid: 4242)).forks.isEmpty, "an unknown pid")
    }

    @Test func withEverySlotTakenTheReplacementWaitsForTheReap() {
        var pool = PoolDriver(poolSettings(.static, maxChildren: 2))
        pool.startServing()
        // Scaled to the board's capacity (twice max_children): no slot is free.
        pool.scaleTarget = pool.core.settings.capacity
        pool.tick()
        pool.readyAll()
        #expect(pool.workerPIDs.count == pool.core.settings.capacity)
        let first = pool.forkedPIDs[0]
        #expect(pool.send(.workerLeaving(pid: first)).forks.isEmpty, "no slot for it yet")
        let exited = pool.exit(first, served: true)
        #expect(exited.forks == [pool.slots[first]!], "its slot, once it is reaped")
        #expect(pool.workerPIDs.count == pool.core.settings.capacity)
    }

    @Test func aLeavingWorkerDoesNotCountAsIdleOrStaying() {
        var pool = PoolDriver(poolSettings(.ondemand, maxChildren: 2) { $0.processIdleTimeout = 10 })
        pool.send(.start)
        pool.readyAll()
        pool.exit(pool.forkedPIDs[0]) // the probe
        pool.send(.goLive)
        pool.listenQueue = 1
        pool.send(.connectionWaiting(pool.observation))
        let worker = pool.forkedPIDs.last!
        pool.ready(worker)
        #expect(pool.core.idleWorkers(pool.observation).map(\.pid) == [worker])
        pool.send(.workerLeaving(pid: worker))
        #expect(pool.core.idleWorkers(pool.observation).isEmpty)
        #expect(!pool.core.staying.contains { $0.pid == worker })
    }
}
