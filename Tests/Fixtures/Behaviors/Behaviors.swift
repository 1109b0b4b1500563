import ForkliftPlugin

#if canImport(Glibc)
import Glibc
#endif

/// A plugin for the integration tests, misbehaving on demand by the last path segment:
///
/// - `.../sleep?ms=N`: one usleep of N ms, then "slept M ms" with the M actually measured
///   (a signal cutting the sleep short shows), plus a 64 KiB tail, so that a test can tell a
///   complete response from a cut one;
/// - `.../throw`: throws, which the host must turn into a 500;
/// - `.../inject`: tries to add a header value with CR LF in it, says whether it was refused;
/// - anything else: "behaviors <pid>".
final class Behaviors: ForkliftHandler {
    static let name = "behaviors"
    static let version = "0.0.1"

    let settings: PluginSettings

    /// Settings that make a hook fail: `fail_preload`, `fail_worker_init`,
    /// `crash_in_worker_init` (abort), `worker_init_sleep_ms`.
    init(context: PluginContext) throws {
        settings = context.settings
        if settings["fail_preload"] == "true" { throw PluginError("preload failed on purpose (fail_preload = true)") }
    }

    func workerInit() throws {
        if settings["fail_worker_init"] == "true" { throw PluginError("worker init failed on purpose (fail_worker_init = true)") }
        if settings["crash_in_worker_init"] == "true" { abort() }
        if let ms = try settings.int("worker_init_sleep_ms") { usleep(UInt32(ms) * 1000) }
    }

    func handle(_ request: Request, _ response: Response) throws {
        let last = request.path.split(separator: "/").last.map(String.init) ?? ""
        switch last {
        case "sleep":
            let ms = Int(request.query.split(separator: "=").last ?? "0") ?? 0
            var start = timespec(), end = timespec()
            clock_gettime(CLOCK_MONOTONIC, &start)
            usleep(UInt32(ms) * 1000)
            clock_gettime(CLOCK_MONOTONIC, &end)
            let slept = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1_000_000
            try response.write("slept \(slept) ms\n")
            try response.write(String(repeating: "z", count: 65536) + "\nend\n")
        case "throw":
            throw PluginError("thrown on purpose by /throw")
        case "inject":
            // Header injection must be refused by the host, whatever Swift thinks a Character is.
            let refused = (try? response.addHeader("X-Test", "a\r\nSet-Cookie: evil=1")) == nil
            try response.write(refused ? "refused\n" : "accepted\n")
        default:
            try response.write("behaviors \(getpid())\n")
        }
    }
}

@_cdecl("forklift_plugin_entry") public func forkliftPluginEntry() -> UnsafeRawPointer { export(Behaviors.self) }
