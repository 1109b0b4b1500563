import ForkliftJSON
import ForkliftIPC
import ForkliftSystem
import Glibc

/// Renders `PoolStatus` in PHP-FPM's formats, with its field names, so that dashboards and
/// scripts written for PHP-FPM's status page read this one. Forklift's own fields come after
/// PHP-FPM's. docs/status.md lists them all.
public enum StatusPage {
    public static func render(_ status: PoolStatus, format: StatusFormat, full: Bool) -> String {
        switch format {
        case .text: text(status, full: full)
        case .json: json(status, full: full)
        case .openmetrics: OpenMetrics.render([status], full: full)
        case .html: html(status, full: full)
        }
    }

    /// (name, value) pairs of the pool, in PHP-FPM's order.
    static func poolFields(_ status: PoolStatus) -> [(String, Value)] {
        let counters = status.counters
        return [
            ("pool", .text(status.pool)),
            ("process manager", .text(status.processManager)),
            ("start time", .time(counters.startedRealtime)),
            ("start since", .number(status.startSince)),
            ("accepted conn", .number(counters.accepted)),
            ("listen queue", .number(counters.listenQueue)),
            ("max listen queue", .number(counters.maxListenQueue)),
            ("listen queue len", .number(counters.listenQueueLength)),
            ("idle processes", .number(status.idle)),
            ("active processes", .number(status.active)),
            ("total processes", .number(status.total)),
            ("max active processes", .number(max(counters.maxActive, status.active))),
            ("max children reached", .number(counters.maxChildrenReached)),
            ("slow requests", .number(counters.slowRequests)),
            // Forklift's own.
            ("generation", .number(status.generation)),
            ("host pid", .number(Int(status.board.hostState?.hostPID ?? 0))),
            ("max children", .number(status.maxChildren)),
            ("standby processes", .number(status.standby)),
            ("condition", .text(status.condition)),
            ("all busy since", .number(status.allBusyFor.map { Int($0) } ?? 0)),
            ("scoreboard", .text(status.scoreboardLine)),
        ]
    }

    /// (name, value) pairs of one worker, in PHP-FPM's order (`script` is the plugin).
    static func workerFields(_ worker: WorkerRecord, _ status: PoolStatus) -> [(String, Value)] {
        let now = status.now
        let duration = worker.requestAge(at: now) ?? worker.lastDuration
        return [
            ("pid", .number(Int(worker.pid))),
            ("state", .text(worker.state.phpFPMName)),
            ("start time", .time(status.realtime(worker.spawned))),
            ("start since", .number(Int(worker.spawned.seconds(until: now)))),
            ("requests", .number(worker.requests)),
            ("request duration", .number(Int(duration * 1_000_000))),
            ("request method", .text(worker.method.isEmpty ? "-" : worker.method)),
            ("request uri", .text(worker.uri.isEmpty ? "-" : worker.uri)),
            ("content length", .number(worker.contentLength)),
            ("user", .text("-")),
            ("script", .text(worker.plugin.isEmpty ? "-" : worker.plugin)),
            ("last request cpu", .decimal(worker.lastDuration > 0 ? worker.lastCPU / worker.lastDuration * 100 : 0)),
            ("last request memory", .number(worker.maxRSSKB * 1024)),
            // Forklift's own.
            ("slot", .number(worker.slot)),
            ("last request status", .number(worker.lastStatus)),
            ("heartbeat since", .number(Int(worker.heartbeat.seconds(until: now)))),
            ("memory pss", .number((worker.memory?.pssKB ?? 0) * 1024)),
            ("memory private dirty", .number((worker.memory?.privateDirtyKB ?? 0) * 1024)),
        ]
    }

    enum Value {
        case text(String)
        case number(Int)
        case decimal(Double)
        /// Seconds since the epoch.
        case time(Int)
    }

    // MARK: text

    static func text(_ status: PoolStatus, full: Bool) -> String {
        var lines = poolFields(status).map { line($0.0, $0.1) }
        if full {
            for worker in status.board.workers {
                lines.append("")
                lines.append("************************")
                lines += workerFields(worker, status).map { line($0.0, $0.1) }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func line(_ name: String, _ value: Value) -> String {
        let label = name + ":"
        return label + String(repeating: " ", count: max(1, 22 - label.count)) + textValue(value)
    }

    static func textValue(_ value: Value) -> String {
        switch value {
        case .text(let text): text
        case .number(let number): String(number)
        case .decimal(let number): twoDecimals(number)
        case .time(let seconds): apacheTime(seconds)
        }
    }

    static func twoDecimals(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = abs(hundredths % 100)
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    /// PHP-FPM's "start time": 01/Dec/2026:21:33:47 +0000, in local time.
    static func apacheTime(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%d/%b/%Y:%H:%M:%S %z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: JSON

    static func json(_ status: PoolStatus, full: Bool) -> String {
        var text = "{" + poolFields(status).map { "\(JSON.string($0.0)):\(jsonValue($0.1))" }.joined(separator: ",")
        if full {
            let workers = status.board.workers.map { worker in
                "{" + workerFields(worker, status).map { "\(JSON.string($0.0)):\(jsonValue($0.1))" }.joined(separator: ",") + "}"
            }
            text += ",\"processes\":[" + workers.joined(separator: ",") + "]"
        }
        return text + "}"
    }

    static func jsonValue(_ value: Value) -> String {
        switch value {
        case .text(let text): JSON.string(text)
        case .number(let number): String(number)
        case .decimal(let number): twoDecimals(number)
        case .time(let seconds): String(seconds)
        }
    }

    // MARK: HTML

    static func html(_ status: PoolStatus, full: Bool) -> String {
        var page = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>forklift status: pool \(HTML.escape(status.pool))</title>
            <style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style>
            </head><body><h1>pool \(HTML.escape(status.pool))</h1>
            <table>

            """
        for (name, value) in poolFields(status) {
            page += "<tr><th>\(HTML.escape(name))</th><td>\(HTML.escape(textValue(value)))</td></tr>\n"
        }
        page += "</table>\n"
        if full, let first = status.board.workers.first {
            let names = workerFields(first, status).map(\.0)
            page += "<h2>workers</h2>\n<table>\n<tr>" + names.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr>\n"
            for worker in status.board.workers {
                page += "<tr>" + workerFields(worker, status).map { "<td>\(HTML.escape(textValue($0.1)))</td>" }.joined() + "</tr>\n"
            }
            page += "</table>\n"
        }
        return page + "</body></html>\n"
    }
}

enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
