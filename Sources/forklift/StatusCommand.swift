import ArgumentParser
import Foundation
import Glibc

/// `forklift status`: the running server's generations and each pool's status page, from
/// the scoreboard; `--watch` redraws a per-worker table like uwsgitop or Apache's scoreboard.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running server's generations and every pool's status (PHP-FPM's fields).",
        discussion: "--dump writes the full state of the master, the hosts and the workers to the log instead (as SIGPWR does)."
    )

    @OptionGroup var options: ControlOptions

    @Flag(help: "JSON, with PHP-FPM's field names for each pool.")
    var json = false

    @Flag(help: "One entry per worker (PHP-FPM's &full).")
    var full = false

    @Flag(help: "Redraw a table of every worker until interrupted.")
    var watch = false

    @Option(help: "Seconds between redraws with --watch.")
    var interval: Double = 1

    @Option(help: ArgumentHelp("Stop --watch after this many redraws (0: never).", visibility: .hidden))
    var count: Int = 0

    @Flag(help: "Write a full state dump of master, hosts and workers to the log.")
    var dump = false

    func validate() throws {
        if watch && json { throw ValidationError("--watch draws a table; it cannot be combined with --json") }
        if interval <= 0 || !interval.isFinite { throw ValidationError("--interval must be above 0") }
    }

    func run() throws {
        if dump {
            try options.send("dump")
            return
        }
        guard watch else {
            try options.send("status" + (json ? " json" : "") + (full ? " full" : ""))
            return
        }
        var drawn = 0
        while count == 0 || drawn < count {
            let answer = try options.ask("status json full")
            let table = WatchTable.render(json: answer, width: Terminal.width)
            // Clear the screen and draw from the top, as top(1) does.
            print((isatty(1) != 0 ? "\u{1B}[H\u{1B}[2J" : "") + table)
            fflush(nil)
            drawn += 1
            if count != 0 && drawn >= count { break }
            usleep(UInt32(min(interval, 3600) * 1_000_000))
        }
    }
}

enum Terminal {
    static var width: Int {
        var size = winsize()
        return ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 120
    }
}

/// The table `--watch` draws, from the master's JSON answer.
enum WatchTable {
    static func render(json: String, width: Int) -> String {
        guard let data = json.data(using: .utf8),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return json }
        var lines: [String] = []
        let stamp = DateFormatter.localizedString(from: Date(), dateStyle: .none, timeStyle: .medium)
        lines.append("forklift master \(root["master"].flatMap { ($0 as? [String: Any])?["pid"] }.map { "\($0)" } ?? "?") — \(stamp)")
        for pool in root["pools"] as? [[String: Any]] ?? [] {
            func field(_ name: String) -> String { pool[name].map { "\($0)" } ?? "-" }
            lines.append("")
            lines.append("pool \(field("pool")) gen \(field("generation")) (\(field("process manager"))): \(field("active processes")) active, \(field("idle processes")) idle, \(field("total processes")) of \(field("max children")); accepted \(field("accepted conn")); listen queue \(field("listen queue"))/\(field("listen queue len")); \(field("condition"))")
            lines.append("scoreboard: \(field("scoreboard"))")
            let header = ["PID", "STATE", "REQS", "DUR(ms)", "CPU%", "STATUS", "PLUGIN", "REQUEST"]
            var rows = [header]
            for process in pool["processes"] as? [[String: Any]] ?? [] {
                func value(_ name: String) -> String { process[name].map { "\($0)" } ?? "-" }
                let duration = (process["request duration"] as? Int).map { String($0 / 1000) } ?? "-"
                rows.append([value("pid"), value("state"), value("requests"), duration, value("last request cpu"),
                             value("last request status"), value("script"), "\(value("request method")) \(value("request uri"))"])
            }
            let widths = (0..<header.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                let line = row.enumerated().map { index, cell in
                    index == row.count - 1 ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
                }.joined()
                lines.append(String(line.prefix(width)))
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// `forklift scale POOL N`: a pool's worker count (static) or ceiling (dynamic, ondemand)
/// at run time, until the next reload; TTIN and TTOU to the master change every pool by one.
struct ScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Set a pool's number of workers (static) or max_children (dynamic, ondemand) until the next reload."
    )

    @OptionGroup var options: ControlOptions

    @Argument(help: "The pool.")
    var pool: String

    @Argument(help: "Workers, from 1 to twice the pool's max_children.")
    var workers: Int

    func run() throws {
        try options.send("scale \(pool) \(workers)")
    }
}
