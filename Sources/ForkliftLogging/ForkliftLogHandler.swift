import ForkliftConfig
import ForkliftJSON
import Glibc
import Logging

/// One line per event:
/// `2026-11-21 12:00:00.123 NOTICE [worker pool=www gen=1 pid=4242] message key=value`,
/// or with `log_format = "json"` one object (a message of several lines stays one line):
/// `{"time":"2026-11-21T11:00:00.123Z","level":"notice","process":"worker","pool":"www","generation":1,"pid":4242,"message":"...","key":"value"}`
public struct ForkliftLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// The level is the process-wide `log_level`, not per logger.
    public var logLevel: Logger.Level {
        get { Self.swiftLogLevel(LogDestination.level) }
        set {}
    }

    public init(label: String) {}

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let explicit = event.metadata { merged.merge(explicit) { $1 } }
        if let error = event.error { merged["error"] = "\(error)" }
        let level = event.level
        let message = event.message
        let sorted = merged.sorted { $0.key < $1.key }
        let identity = ProcessIdentity.current
        if LogDestination.format == .json {
            LogDestination.write(Self.jsonLine(level: level, message: "\(message)", identity: identity, fields: sorted.map { ($0.key, "\($0.value)") }))
            return
        }
        let fields = sorted.map { " \($0.key)=\($0.value)" }.joined()
        let text = "\(Self.timestamp()) \(Self.name(level)) [\(identity) pid=\(getpid())] \(message)\(fields)\n"
        LogDestination.write(text)
    }

    /// The fixed keys first; a metadata key that would repeat one is left out.
    static func jsonLine(level: Logger.Level, message: String, identity: ProcessIdentity, fields: [(String, String)]) -> String {
        var line = "{\"time\":\(JSON.string(utcTimestamp())),\"level\":\(JSON.string(name(level).lowercased())),\"process\":\(JSON.string(identity.role.rawValue))"
        if let pool = identity.pool { line += ",\"pool\":\(JSON.string(pool))" }
        if let generation = identity.generation { line += ",\"generation\":\(generation)" }
        line += ",\"pid\":\(getpid()),\"message\":\(JSON.string(message))"
        let fixed: Set<String> = ["time", "level", "process", "pool", "generation", "pid", "message"]
        for (key, value) in fields where !fixed.contains(key) { line += ",\(JSON.string(key)):\(JSON.string(value))" }
        return line + "}\n"
    }

    /// "2026-12-01T21:33:47.123Z": UTC, ISO 8601, what log shippers parse without a pattern.
    public static func utcTimestamp(_ realtime: Double? = nil) -> String {
        var now = timespec()
        if let realtime {
            now.tv_sec = Int(realtime.rounded(.down))
            now.tv_nsec = Int((realtime - realtime.rounded(.down)) * 1e9)
        } else {
            clock_gettime(CLOCK_REALTIME, &now)
        }
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }

    static func name(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: "DEBUG"
        case .info: "INFO"
        case .notice: "NOTICE"
        case .warning: "WARNING"
        case .error: "ERROR"
        case .critical: "CRITICAL"
        }
    }

    public static func swiftLogLevel(_ filter: LogLevel) -> Logger.Level {
        switch filter {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        }
    }

    private static func pad(_ value: Int32, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// "2026-12-01 21:33:47.123", local time: how every log line starts.
    public static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        localtime_r(&seconds, &parts)
        return "\(parts.tm_year + 1900)-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2)) "
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))"
    }
}

public enum ForkliftLogging {
    /// Installs the handler for the whole process tree; call once, first thing in main.
    public static func bootstrap() {
        LoggingSystem.bootstrap { ForkliftLogHandler(label: $0) }
    }

    /// The logger everything in Forklift uses.
    public static let logger = Logger(label: "forklift")
}

extension Logger {
    /// Logs at one of forklift's levels (what the process-control cores return).
    public func log(_ level: LogLevel, _ message: String) {
        log(level: ForkliftLogHandler.swiftLogLevel(level), "\(message)")
    }
}
