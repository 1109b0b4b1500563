import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import ForkliftWorker
import Glibc

/// `forklift check`: opens a plugin in a throwaway child, so that neither a crash in the
/// plugin's initialisers nor its image (which can never be unloaded) stays in the caller.
public enum PluginProbe {
    public enum Outcome { case success(String), failure(String) }

    /// The child takes on the pool's privileges first, as its host would (creating no log
    /// file), so that the check reads the file as the pool's user does.
    public static func run(_ settings: PluginSettings, pool: PoolSettings) -> Outcome {
        guard let pipe = try? Pipe(nonBlocking: false) else { return .failure("cannot create a pipe") }
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(prepareChild: { closeDescriptor(pipe.readEnd) }) {
                ProcessIdentity.current = ProcessIdentity(role: .check)
                unblockAllSignals()
                let line: HostReport
                do {
                    do {
                        _ = try PrivilegeDrop.apply(pool.privileges, pool: pool, creatingLogFiles: false)
                    } catch {
                        throw PluginFailure("pool \(pool.name): cannot take on its privileges: \(error)")
                    }
                    let loaded = try PluginLoader.open(settings, pool: pool.name)
                    let instance = PluginInstance(settings: settings, poolName: "", descriptor: loaded.descriptor)
                    let debug = loaded.isDebugBuild ? " (a debug build: it does not keep what it preloads shared by the workers; for production, build it with swift build -c release)" : ""
                    line = .ready(summary: "plugin \(settings.name) (\(settings.path)): \(instance.reportedName) version \(instance.version), ABI ok, route \(settings.route)\(debug)")
                } catch {
                    line = .failed(reason: "\(error)")
                }
                try? writeAll(pipe.writeEnd, line.line)
                ChildProcess.exitImmediately(0)
            }
        } catch {
            pipe.close()
            return .failure("cannot fork: \(error)")
        }
        closeDescriptor(pipe.writeEnd)
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(pipe.readEnd, $0.baseAddress, 4096) }
            if count > 0 { output += buffer[0..<count]; continue }
            if count < 0 && errno == EINTR { continue }
            break
        }
        closeDescriptor(pipe.readEnd)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        var lines = LineBuffer()
        switch lines.append(output).first.flatMap(HostReport.init(line:)) {
        case .ready(let summary): return .success(summary)
        case .failed(let reason): return .failure(reason)
        case .loaded, .emergencyRestart, .dataBuilt, .dataUnused, nil: return .failure("plugin \(settings.name) (\(settings.path)): the process loading it died (wait status \(status)) before reporting")
        }
    }
}
