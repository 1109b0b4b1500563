import Foundation
import ForkliftTestSupport
import Glibc
import Testing

/// `forklift run --daemonize`: the launcher returns once the daemon serves, or fails with the reason.
@Suite struct DaemonizeTests {
    /// Writes `config` into a fresh directory and runs `forklift run --daemonize` on it.
    func launch(_ config: String) throws -> (directory: String, result: Command.Result) {
        let directory = try TemporaryDirectory.make()
        try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: versionOne, toPath: directory + "/versioned.so")
        try ForkliftServer.expand(config, directory: directory).write(toFile: directory + "/conf.d/00-test.toml", atomically: true, encoding: .utf8)
        let result = try Command.run(ForkliftServer.binary, ["run", "--daemonize", "--conf", directory + "/conf.d"] + ForkliftServer.rootArguments(), errorsApart: true)
        return (directory, result)
    }

    /// Stops whatever daemon a failed expectation left behind.
    func cleanUp(_ directory: String) {
        if let text = try? String(contentsOfFile: directory + "/forklift.pid", encoding: .utf8),
           let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), ProcessTable.isAlive(pid) {
            let children = ProcessTable.descendants(of: pid).keys
            kill(pid, SIGKILL)
            for child in children { kill(child, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    @Test func itReturnsOnceServingAndThePidFileNamesTheMaster() throws {
        let (directory, result) = try launch(reloadConfig(global: "error_log = \"{dir}/error.log\""))
        defer { cleanUp(directory) }
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        let pidText = try String(contentsOfFile: directory + "/forklift.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let master = try #require(pid_t(pidText))
        #expect(result.output.contains("running in the background as pid \(master)"), "\(result.output)")
        #expect(ProcessTable.title(of: master) == "forklift: master")
        #expect(getsid(master) != getsid(0) && getsid(master) != master, "a session of its own, which it does not lead (no terminal can be acquired)")
        #expect(try FastCGIClient.get(.unix(directory + "/www.sock"), "/v").status == 200, "serving when the launcher returned")
        let log = (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? ""
        #expect(log.contains("forklift is ready"), "standard error and the log go to error_log: \(log)")

        let stop = try Command.run(ForkliftServer.binary, ["stop", "--conf", directory + "/conf.d"])
        #expect(stop.status == 0, "\(stop.output)")
        // The answer comes as the master closes its control socket, a moment before it is gone.
        #expect(ForkliftServer.eventually { !ProcessTable.isAlive(master) })
    }

    @Test func aBrokenConfigurationFailsWithItsReason() throws {
        let (directory, result) = try launch(reloadConfig(extra: "max_requests = \"lots\""))
        defer { cleanUp(directory) }
        #expect(result.status != 0)
        #expect(result.errors.contains("configuration error") && result.errors.contains("max_requests"), "\(result.errors)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/forklift.pid"))
    }

    @Test func aPluginThatDoesNotLoadFailsWithItsReason() throws {
        let (directory, result) = try launch(reloadConfig(behaviorSettings: "fail_preload = \"true\""))
        defer { cleanUp(directory) }
        #expect(result.status == 1, "\(result.output)")
        #expect(result.errors.contains("preload failed on purpose"), "the daemon's reason, on the launcher's standard error: \(result.errors)")
        #expect(ForkliftServer.eventually { !FileManager.default.fileExists(atPath: directory + "/forklift.pid") }, "the daemon is gone")
    }
}
