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
/// - `.../throw-late`: writes part of the body, flushes it, then throws;
/// - `.../hang?ms=N`: sleeps N ms in a loop that resumes after a signal (as robust code does);
/// - `.../trap`: a Swift runtime trap (an array index out of range);
/// - `.../segv`: a write through a bad pointer; `.../abort`: abort();
/// - `.../print?n=N`: prints "out <pid>" on stdout, "err <pid>" and a line of N x's on stderr;
/// - `.../big?mb=N`: N MiB of body;
/// - `.../shared-maps`: how many shared anonymous mappings this worker has (its scoreboard's);
/// - `.../scribble-slot`: overwrites this worker's own scoreboard slot with random bytes, as a
///   hostile worker could (the layout is Forklift's `forklift_scoreboard.h`);
/// - anything else: "behaviors <pid>".
final class Behaviors: ForkliftHandler {
    static let name = "behaviors"
    static let version = "0.0.1"

    let settings: PluginSettings
    let log: PluginLog
    /// A little preloaded data, sealed read-only before fork (for `/scribble`).
    let preloaded: SharedArray<UInt64>
    /// What `/leak` keeps, so the memory stays dirty.
    var leaked: [[UInt8]] = []
    /// The process warmUp() ran in (the host, if all is well).
    var warmedUpIn: pid_t = 0
    /// `/sleep`'s 64 KiB tail, built once at preload: String(repeating:count:) per request took
    /// 1.5-2.5 ms, and the benchmarks' 64 KiB case (benchmarks/peers.py) measured that: 300/s, 6,000/s now.
    let tail: [UInt8] = Array((String(repeating: "z", count: 65536) + "\nend\n").utf8)

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
        log = context.log
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
            try response.write(tail)
        case "throw":
            throw PluginError("thrown on purpose by /throw")
        case "spawn":
            // A helper started the SDK's way: no signal blocked, its own title, none of our sockets.
            let child = try SpawnedProcess.spawn("/bin/sleep", arguments: ["1000"])
            try response.write("spawned \(child.pid) from \(getpid())\n")
        case "fork":
            // Forked by hand in a handler: TERM is blocked here, and the child keeps that mask.
            let child = fork()
            if child == 0 {
                while true { pause() }
            }
            try response.write("forked \(child) from \(getpid())\n")
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
        case "hang":
            let ms = Int(request.query.split(separator: "=").last ?? "0") ?? 0
            var remaining = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
            var left = timespec()
            while nanosleep(&remaining, &left) == -1 && errno == EINTR { remaining = left }
            try response.write("hung \(ms) ms\n")
        case "print":
            let n = Int(request.query.split(separator: "=").last ?? "0") ?? 0
            print("out \(getpid())")
            fflush(nil)
            let err = "err \(getpid())\n" + (n > 0 ? String(repeating: "x", count: n) + "\n" : "")
            _ = err.withCString { write(2, $0, strlen($0)) }
            try response.write("printed\n")
        case "segv":
            UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 1
        case "abort":
            abort()
        case "trap":
            let values = [1, 2, 3]
            let index = Int(request.query.split(separator: "=").last ?? "7") ?? 7
            try response.write("\(values[index])\n")
        case "finish-then-sleep":
            // fastcgi_finish_request: the client has the response before the sleep ends.
            let ms = Int(request.query.split(separator: "&").first?.split(separator: "=").last ?? "0") ?? 0
            try response.write("finished before the work, pid \(getpid())\n")
            try response.finish()
            let writeAfter = (try? response.write("too late\n")) == nil ? "refused" : "accepted"
            let bodyAfter = try request.body(limit: 1 << 20).count
            usleep(UInt32(ms) * 1000)
            log.notice("work after finish done: slept \(ms) ms, a write after finish was \(writeAfter), body after finish \(bodyAfter) bytes")
            if request.query.contains("then-throw") { throw PluginError("thrown on purpose after finishing") }
        case "throw-late":
            try response.write(String(repeating: "p", count: 10_000))
            try response.flush()
            throw PluginError("thrown on purpose by /throw-late after part of the body")
        case "big":
            let mb = Int(request.query.split(separator: "=").last ?? "1") ?? 1
            let chunk = [UInt8](repeating: 98, count: 1 << 20)
            for _ in 0..<mb { try response.write(chunk) }
        case "big-unchecked":
            // As big, but a failed write is let pass and the handler returns normally.
            let mb = Int(request.query.split(separator: "=").last ?? "1") ?? 1
            let chunk = [UInt8](repeating: 98, count: 1 << 20)
            for _ in 0..<mb { _ = try? response.write(chunk) }
        case "shared-maps":
            try response.write("\(SharedMaps.all().count) shared mappings\n")
        case "scribble-slot":
            try response.write(SharedMaps.scribbleOwnSlot() ? "scribbled my slot\n" : "no slot found\n")
        case "environment":
            // What a plugin sees (environ), one variable per line, sorted.
            var variables: [String] = []
            var entry = environ
            while let pointer = entry.pointee {
                variables.append(String(cString: pointer))
                entry += 1
            }
            try response.write(variables.sorted().map { $0 + "\n" }.joined())
        case "write-memory-of":
            // ?PID: whether this worker may write another process's memory (a scoreboard
            // another pool's host maps, say) through /proc.
            let fd = open("/proc/\(request.query)/mem", O_RDWR)
            if fd >= 0 { close(fd) }
            try response.write(fd >= 0 ? "opened\n" : "refused: \(String(cString: strerror(errno)))\n")
        case "inject":
            // Header injection must be refused by the host, whatever Swift thinks a Character is.
            let refused = (try? response.addHeader("X-Test", "a\r\nSet-Cookie: evil=1")) == nil
            try response.write(refused ? "refused\n" : "accepted\n")
        default:
            try response.write("behaviors \(getpid())\n")
        }
    }
}

/// The shared anonymous mappings of this process (what /proc/self/maps shows as "rw-s" of
/// "/dev/zero (deleted)"): for a worker, its generation's scoreboard and its pool's counters.
enum SharedMaps {
    static func all() -> [(start: UInt, end: UInt)] {
        guard let file = fopen("/proc/self/maps", "r") else { return [] }
        defer { fclose(file) }
        var lines: [String] = []
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            lines.append(String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return lines.compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "rw-s", line.hasSuffix("/dev/zero (deleted)") else { return nil }
            let range = fields[0].split(separator: "-").compactMap { UInt($0, radix: 16) }
            return range.count == 2 ? (range[0], range[1]) : nil
        }
    }

    /// Finds the slot whose pid is ours in a board (magic "BFLK", slots of 448 bytes after a
    /// 192-byte header) and fills it with random bytes.
    static func scribbleOwnSlot() -> Bool {
        for mapping in all() {
            guard let base = UnsafeMutableRawPointer(bitPattern: mapping.start), mapping.end - mapping.start >= 192 + 448 else { continue }
            guard base.load(as: UInt32.self) == 0x4B4C_4642 else { continue }
            let slots = Int(base.load(fromByteOffset: 8, as: UInt32.self))
            for index in 0..<min(slots, Int(mapping.end - mapping.start - 192) / 448) {
                let slot = base + 192 + index * 448
                guard slot.load(fromByteOffset: 8, as: Int32.self) == getpid() else { continue }
                for offset in 0..<448 { slot.storeBytes(of: UInt8.random(in: 0...255), toByteOffset: offset, as: UInt8.self) }
                return true
            }
        }
        return false
    }
}

@_cdecl("forklift_plugin_entry") public func forkliftPluginEntry() -> UnsafeRawPointer { export(Behaviors.self) }
