import CForkliftSys
import ForkliftConfig
import ForkliftLogging
import ForkliftSystem
import Glibc

/// The pool's access log: one line per request in `access_format`, appended by the worker
/// that served it (one write per line, so lines of different workers never mix), reopened on
/// USR1 after logrotate moved the file.
struct AccessLog {
    let path: String
    let format: AccessLogFormat
    private var fd: Int32 = -1
    /// The line of the request being served, written once its response is complete.
    private var pending: String?
    /// The last open or write failed (and was logged).
    private var failing = false
    let measuresCPU: Bool

    init?(pool: PoolSettings) {
        guard let path = pool.accessLog, let format = try? AccessLogFormat(pool.accessFormat) else { return nil }
        self.path = path
        self.format = format
        measuresCPU = format.tokens.contains { if case .field(let letter, _) = $0 { letter == "C" || letter == "M" } else { false } }
    }

    /// The request's line, while its params and headers are still there.
    mutating func record(_ request: RequestBridge, response: ResponseBridge, pool: String, plugin: String, started: MonotonicInstant,
                         receivedAt: Double, cpu: (nanoseconds: UInt64, maxRSSKB: UInt64)?) {
        let known = request.known
        let now = MonotonicInstant.now()
        let duration = started.seconds(until: now)
        func text(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        let uri = text(known.request_uri).map { String($0.prefix { $0 != "?" }) } ?? request.routedPath
        let query = text(known.query_string)
        pending = format.render { letter, argument in
            switch letter {
            case "R": return request.param("REMOTE_ADDR")
            case "u": return request.param("REMOTE_USER")
            case "m": return text(known.request_method)
            case "r": return uri
            case "q": return query ?? ""
            case "Q": return query == nil ? "" : "?"
            case "s": return String(response.status)
            case "l": return text(known.content_length) ?? "0"
            case "f": return plugin.isEmpty ? nil : plugin
            case "n": return pool
            case "p": return String(getpid())
            case "P": return String(getppid())
            case "e": return argument.flatMap { request.param($0) }
            case "o": return argument.flatMap { response.header($0) }
            case "t": return Self.time(receivedAt, argument)
            case "T": return Self.time(receivedAt + duration, argument)
            case "C":
                guard let cpu, duration > 0 else { return "0.00" }
                return Self.twoDecimals(Double(cpu.nanoseconds) / 1e9 / duration * 100)
            case "M":
                guard let kb = cpu?.maxRSSKB else { return "0" }
                switch argument {
                case "kilo", "kilobytes": return String(kb)
                case "mega", "megabytes": return String(kb / 1024)
                default: return String(kb * 1024)
                }
            case "d":
                switch argument {
                case "milliseconds", "mili": return Self.twoDecimals(duration * 1000, digits: 3)
                case "microseconds", "micro": return String(Int(duration * 1_000_000))
                default: return Self.twoDecimals(duration, digits: 3)
                }
            default:
                return nil
            }
        }
    }

    /// Writes the pending line (after the response went out: the write costs the client nothing).
    mutating func flush() {
        guard let line = pending else { return }
        pending = nil
        if fd < 0 { fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640) }
        guard fd >= 0 else {
            // Once per failing stretch (a directory removed by hand, a full disk), not per request.
            if !failing { ForkliftLogging.logger.error("cannot open access_log \(path): \(String(cString: strerror(errno))); request lines are lost until it can be") }
            failing = true
            return
        }
        do {
            try writeAll(fd, line + "\n")
            failing = false
        } catch {
            if !failing { ForkliftLogging.logger.error("cannot write access_log \(path): \(error); request lines are lost until it can be") }
            failing = true
        }
    }

    /// After USR1: the next line goes to the file at `path` now.
    mutating func reopen() {
        closeDescriptor(fd)
        fd = -1
    }

    static func time(_ seconds: Double, _ format: String?) -> String {
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 128)
        let count = strftime(&buffer, buffer.count, format ?? "%d/%b/%Y:%H:%M:%S %z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func twoDecimals(_ value: Double, digits: Int = 2) -> String {
        let scale = digits == 3 ? 1000.0 : 100.0
        let scaled = Int((min(max(value, 0), 1e12) * scale).rounded())
        let whole = scaled / Int(scale), fraction = String(scaled % Int(scale))
        return "\(whole)." + String(repeating: "0", count: digits - fraction.count) + fraction
    }
}
