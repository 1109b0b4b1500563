import CForkliftSys
import ForkliftConfig
import ForkliftJSON
import ForkliftLogging
import ForkliftSystem
import Glibc

/// The pool's access log: one line per request in `access_format` (or, with
/// `access_log_format = "json"`, one JSON object with every field), appended by the worker
/// that served it (one write per line, so lines of different workers never mix), reopened on
/// USR1 after logrotate moved the file.
struct AccessLog {
    let path: String
    let format: AccessLogFormat
    let json: Bool
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
        json = pool.accessLogFormat == .json
        measuresCPU = json || format.tokens.contains { if case .field(let letter, _) = $0 { letter == "C" || letter == "M" } else { false } }
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
        if json {
            pending = Self.jsonLine(request, response: response, uri: uri, query: query, method: text(known.request_method),
                                    contentLength: text(known.content_length), pool: pool, plugin: plugin,
                                    receivedAt: receivedAt, duration: duration, cpu: cpu)
            return
        }
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

    /// Every field, named: what a log shipper indexes without a parsing pattern.
    static func jsonLine(_ request: RequestBridge, response: ResponseBridge, uri: String, query: String?, method: String?, contentLength: String?,
                         pool: String, plugin: String, receivedAt: Double, duration: Double,
                         cpu: (nanoseconds: UInt64, maxRSSKB: UInt64)?) -> String {
        func string(_ value: String?) -> String { value.map(JSON.string) ?? "null" }
        let cpuPercent = cpu.map { duration > 0 ? twoDecimals(Double($0.nanoseconds) / 1e9 / duration * 100) : "0.00" } ?? "null"
        return "{\"time\":\(JSON.string(ForkliftLogHandler.utcTimestamp(receivedAt))),\"remote_addr\":\(string(request.param("REMOTE_ADDR"))),"
            + "\"remote_user\":\(string(request.param("REMOTE_USER"))),\"method\":\(string(method)),\"uri\":\(JSON.string(uri)),"
            + "\"query\":\(string(query)),\"status\":\(response.status),\"request_length\":\(contentLength.flatMap { Int($0) } ?? 0),"
            + "\"response_length\":\(response.bodyBytes),\"duration_ms\":\(twoDecimals(duration * 1000, digits: 3)),\"cpu_percent\":\(cpuPercent),"
            + "\"memory_bytes\":\(cpu.map { String($0.maxRSSKB * 1024) } ?? "null"),\"pid\":\(getpid()),\"pool\":\(JSON.string(pool)),"
            + "\"plugin\":\(plugin.isEmpty ? "null" : JSON.string(plugin))}"
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
