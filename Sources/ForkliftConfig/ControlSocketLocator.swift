import Foundation
import TOMLKit

/// Where `forklift reload` and `forklift stop` find the running master's control socket.
///
/// From the full configuration when it is valid; when it is not (someone is about to reload a
/// broken file), from whatever `[global]` keys can still be read, so that the master itself
/// gets to judge the configuration and report why it refuses it.
public enum ControlSocketLocator {
    public static func locate(directory: String) -> String {
        if let configuration = try? ConfigurationLoader.load(directory: directory) {
            return configuration.global.controlSocket
        }
        let directoryURL = URL(fileURLWithPath: directory).standardizedFileURL
        var prefix: String?, pid: String?, socket: String?
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directoryURL.path)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()
        for name in names {
            guard let text = try? String(contentsOfFile: directoryURL.appendingPathComponent(name).path, encoding: .utf8),
                  let table = try? TOMLTable(string: text), let global = table["global"]?.table else { continue }
            prefix = global["prefix"]?.string ?? prefix
            pid = global["pid"]?.string ?? pid
            socket = global["control_socket"]?.string ?? socket
        }
        let base = prefix.map { Paths.resolve($0, against: directoryURL.path) } ?? directoryURL.deletingLastPathComponent().path
        if let socket { return Paths.resolve(socket, against: base) }
        return GlobalSettings.defaultControlSocket(pidFile: Paths.resolve(pid ?? "forklift.pid", against: base))
    }
}
