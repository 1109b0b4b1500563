import Foundation
import ForkliftTestSupport
import Testing

/// A kept connection outlives `forklift upgrade`: the old master retires its generation for
/// the handover, its worker parks the idle connection on the pool's parking channel (which
/// the new master inherits with the listener), and the connection's next request is served
/// by a worker of the new master. Without parking the retired worker closes the connection
/// under the client (the race with nginx that loses POSTs).
@Suite(.serialized) struct ParkingUpgradeTests {
    @Test func aKeptConnectionOutlivesABinaryUpgrade() throws {
        let server = try ForkliftServer(config: sizedPool("max_children = 1\nkeepalive_timeout = \"60s\""), executable: "{dir}/bin/forklift") { dir in
            try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: ForkliftServer.binary, toPath: dir + "/bin/forklift")
        }
        defer { server.shutdown() }
        let dir = server.directory
        let oldMaster = server.pid

        let kept = try KeptConnection(server.www)
        let before = try kept.get("/behaviors")
        #expect(before.status == 200)
        let oldWorker = try #require(Self.worker(before.bodyText), "\(before.bodyText)")
        #expect(server.workerPIDs().contains(oldWorker), "served by a worker of the old master")

        try server.install(ForkliftServer.binary, as: "bin/forklift")
        let result = try Command.run(dir + "/bin/forklift", ["upgrade", "--conf", server.configurationDirectory])
        #expect(result.status == 0, "\(result.output)")
        #expect(server.waitForExit(timeout: 20) == 0, "the old master drains and exits 0")

        let pidText = try String(contentsOfFile: dir + "/forklift.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let newMaster = try #require(pid_t(pidText))
        #expect(newMaster != oldMaster)
        defer { kill(newMaster, SIGTERM); _ = ForkliftServer.eventually(timeout: 10) { !ProcessTable.isAlive(newMaster) } }
        #expect(!ProcessTable.isAlive(oldWorker), "the old master's worker left")

        #expect(!kept.closedByServer(within: 0.3), "the connection the old worker kept is still open")
        let after = try kept.get("/behaviors")
        #expect(after.status == 200, "its next request is answered: \(after.bodyText)")
        let newWorker = try #require(Self.worker(after.bodyText), "\(after.bodyText)")
        #expect(newWorker != oldWorker)
        let newWorkers = ProcessTable.descendants(of: newMaster).filter { $0.value.hasPrefix("forklift: worker pool=www ") }
        #expect(newWorkers[newWorker] != nil, "served by a worker of the new master (\(newWorker); its workers: \(newWorkers.keys.sorted()))")
        #expect(try kept.get("/behaviors").status == 200, "and the connection stays usable")
    }

    /// "behaviors <pid>" -> pid
    static func worker(_ body: String) -> pid_t? {
        body.split(separator: "\n").first.flatMap { $0.split(separator: " ").last }.flatMap { pid_t($0) }
    }
}
