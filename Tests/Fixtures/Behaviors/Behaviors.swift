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
/// - `.../scribble`: writes into its sealed preloaded data (the worker must die of it);
/// - `.../leak?mb=N`: keeps N more MiB of dirty memory (for max_private_memory);
/// - `.../inject`: tries to add a header value with CR LF in it, says whether it was refused;
/// - `.../exit`: the worker exits with status 1 in the middle of the request;
/// - anything else: "behaviors <pid>".
final class Behaviors: ForkliftHandler {
    static let name = "behaviors"
    static let version = "0.0.1"

    let settings: PluginSettings
    /// A little preloaded data, sealed read-only before fork (for `/scribble`).
    let preloaded: SharedArray<UInt64>
    /// What `/leak` keeps, so the memory stays dirty.
    var leaked: [[UInt8]] = []
    /// The process warmUp() ran in (the host, if all is well).
    var warmedUpIn: pid_t = 0

    func warmUp() throws {
        warmedUpIn = getpid()
    }

    /// Settings that make a hook fail or take time: `fail_preload`, `crash_in_preload` (abort), `preload_sleep_ms`,
    /// `fail_worker_init`, `crash_in_worker_init` (abort), `worker_init_sleep_ms`,
    /// `fail_worker_init_while` (a path: worker init fails while that file exists),
    /// `hang_worker_init_while` (a path: worker init waits while that file exists),
    /// `start_thread` (in preload), `worker_thread` (a thread started in worker init).
    init(context: PluginContext) throws {
        settings = context.settings
        if settings["fail_preload"] == "true" { throw PluginError("preload failed on purpose (fail_preload = true)") }
        if settings["crash_in_preload"] == "true" { abort() }
        if let ms = try settings.int("preload_sleep_ms") { usleep(UInt32(ms) * 1000) }
        let arena = try SharedArena(capacity: 1 << 16, label: "behaviors")
        preloaded = try arena.append(contentsOf: [UInt64](repeating: 42, count: 512))
        if settings["start_thread"] == "true" {
            var thread = pthread_t()
            _ = pthread_create(&thread, nil, { _ in sleep(1000); return nil }, nil)
        }
    }

    func workerInit() throws {
        if settings["fail_worker_init"] == "true" { throw PluginError("worker init failed on purpose (fail_worker_init = true)") }
        if settings["crash_in_worker_init"] == "true" { abort() }
        if let path = settings["fail_worker_init_while"], access(path, F_OK) == 0 {
            throw PluginError("worker init failed on purpose: \(path) exists")
        }
        if let path = settings["hang_worker_init_while"] {
            while access(path, F_OK) == 0 { usleep(20_000) }
        }
        if let ms = try settings.int("worker_init_sleep_ms") { usleep(UInt32(ms) * 1000) }
        if settings["worker_thread"] == "true" {
            var thread = pthread_t()
            _ = pthread_create(&thread, nil, { _ in while true { sleep(1000) } }, nil)
        }
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
        case "scribble":
            // A write to data that was sealed before fork: must kill this worker, loudly.
            UnsafeMutablePointer(mutating: preloaded.withUnsafeBufferPointer { $0.baseAddress! }).pointee = 7
            try response.write("scribbled\n")
        case "warmup":
            try response.write("warmed up in \(warmedUpIn), worker of \(getppid())\n")
        case "leak":
            let mb = Int(request.query.split(separator: "=").last ?? "1") ?? 1
            leaked.append([UInt8](repeating: 1, count: mb << 20))
            try response.write("leaked \(mb) MiB\n")
        case "exit":
            exit(1)
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
