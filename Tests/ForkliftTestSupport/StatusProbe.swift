import Foundation

/// Reads a pool's status page (PHP-FPM's JSON, `?json&full`) over FastCGI.
public struct PoolStatusPage: @unchecked Sendable {
    public let fields: [String: Any]

    public func int(_ name: String) -> Int { (fields[name] as? Int) ?? (fields[name] as? NSNumber)?.intValue ?? -1 }
    public func string(_ name: String) -> String { fields[name] as? String ?? "" }
    public var processes: [[String: Any]] { fields["processes"] as? [[String: Any]] ?? [] }
    public var pids: Set<Int32> { Set(processes.compactMap { ($0["pid"] as? NSNumber)?.int32Value }) }

    /// The page at `path` of `address`, as JSON with one entry per worker.
    public static func fetch(_ address: FastCGIAddress, path: String = "/status", timeout: Double = 5) throws -> PoolStatusPage {
        let response = try FastCGIClient.get(address, path, query: "json&full", timeout: timeout)
        guard response.status == 200 else { throw FastCGIError("status page: \(response.status) \(response.bodyText)") }
        guard let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw FastCGIError("status page: not a JSON object: \(response.bodyText)")
        }
        return PoolStatusPage(fields: object)
    }
}

extension ForkliftServer {
    /// `forklift ARGS --conf DIR` against this server.
    public func command(_ arguments: [String]) throws -> Command.Result {
        try Command.run(Self.binary, arguments + ["--conf", configurationDirectory])
    }

    /// Waits until `condition` holds for the pool's status page; returns the page that did.
    public func waitForStatus(_ address: FastCGIAddress, timeout: Double = 20, _ what: String,
                              _ condition: (PoolStatusPage) -> Bool) throws -> PoolStatusPage {
        var last: PoolStatusPage?
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let page = try? PoolStatusPage.fetch(address) {
                last = page
                if condition(page) { return page }
            }
            usleep(50_000)
        }
        throw FastCGIError("timed out waiting for the status page to show \(what); last: \(last.map { "\($0.fields)" } ?? "none")\nlog:\n\(log)")
    }
}
