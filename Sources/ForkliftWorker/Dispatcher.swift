import CFastCGI
import ForkliftConfig
import ForkliftIPC
import ForkliftLogging
import ForkliftSystem
import Glibc
import Logging

/// Routes one request to its plugin, turns the plugin's failure into a 500, and keeps the
/// worker's scoreboard slot up to date: running (with the request line), finishing, done.
struct Dispatcher {
    let plugins: [PluginInstance]
    let router: Router
    let pool: PoolSettings
    let slot: WorkerSlot
    let counters: PoolCounters
    /// The plugins' names as bytes, for the slot (no String per request).
    private let pluginNames: [[UInt8]]
    private var lastStatus = 0
    /// This thread's CPU time when the last request ended: one getrusage per request (each
    /// costs 0.3-0.7 µs of system time here), so a request's CPU is what the thread used
    /// since the previous one ended, waiting included (nearly none).
    private var cpuBefore: UInt64 = ProcessCPU.used().nanoseconds

    let pages: BuiltInPages
    var accessLog: AccessLog?

    /// The worker's; nil where no handler may finish early (tests of the bridges).
    let earlyFinish: EarlyFinish?

    /// The bridges a plugin sees the request through, made at the first request and begun
    /// again for each.
    private var bridges: (request: RequestBridge, response: ResponseBridge)?

    /// log_level is the worker's for its life (a reload forks new ones): with it below debug,
    /// a request costs no logger call.
    private let logsRequests = LogDestination.level == .debug

    init(plugins: [PluginInstance], pool: PoolSettings, generation: Int, board: GenerationBoard, slot: WorkerSlot, counters: PoolCounters,
         earlyFinish: EarlyFinish? = nil) {
        self.plugins = plugins
        self.earlyFinish = earlyFinish
        self.pool = pool
        self.slot = slot
        self.counters = counters
        pages = BuiltInPages(pool: pool, generation: generation, board: board, counters: counters)
        accessLog = AccessLog(pool: pool)
        router = Router(routes: plugins.map(\.settings.route))
        pluginNames = plugins.map { Array($0.settings.name.utf8) }
    }

    /// Serves the request; the slot says "finishing" when this returns (libfcgi still has to
    /// flush and close).
    enum Outcome: Equatable {
        case complete
        /// The plugin failed after part of the response went out: the connection must be
        /// aborted, not ended normally.
        case abort
    }

    /// `started`: when the worker began reading the request.
    @discardableResult
    mutating func serve(_ fcgiRequest: UnsafeMutablePointer<FCGX_Request>, started: MonotonicInstant) -> Outcome {
        let outcome = dispatch(fcgiRequest, started: started)
        // A response cut short on the wire (the client went, or took nothing for
        // request_write_timeout) is aborted whatever the handler returned (a plugin that let
        // a failed write pass, a built-in page): ended normally, the client could take what it
        // got for the whole response.
        if outcome == .complete, let response = bridges?.response, response.broken, response.headersSent, earlyFinish?.finished != true {
            return .abort
        }
        return outcome
    }

    private mutating func dispatch(_ fcgiRequest: UnsafeMutablePointer<FCGX_Request>, started: MonotonicInstant) -> Outcome {
        let request: RequestBridge, response: ResponseBridge
        if let bridges {
            (request, response) = bridges
            request.begin(fcgiRequest)
            response.begin()
        } else {
            request = RequestBridge(fcgiRequest, bodyLimit: pool.maxBodySize, earlyFinish: earlyFinish)
            response = ResponseBridge(request: fcgiRequest, earlyFinish: earlyFinish)
            bridges = (request, response)
        }
        counters.requestStarted()
        var pluginName = ""
        defer {
            lastStatus = response.status
            if accessLog != nil {
                let cpu = accessLog!.measuresCPU ? ProcessCPU.used() : nil
                accessLog!.record(request, response: response, pool: pool.name, plugin: pluginName, started: started,
                                  receivedAt: WallClock.realtime(at: started),
                                  cpu: cpu.map { ($0.nanoseconds &- cpuBefore, $0.maxRSSKB) })
            }
            slot.set(.finishing)
            if logsRequests {
                ForkliftLogging.logger.debug("\(request.param("REQUEST_METHOD") ?? "-") \(request.routedPath) \(response.status) \(Formatting.milliseconds(from: started)) ms")
            }
            request.end()
        }

        if let page = pages.page(for: request.pathBytes) {
            markRunning(request, plugin: BuiltInPages.label(page), now: started)
            pages.respond(page, query: request.known.query_string.map { String(cString: $0) } ?? "", response: response)
            return .complete
        }
        let index = router.match(bytes: request.pathBytes)
        markRunning(request, plugin: index.map { pluginNames[$0] } ?? [], now: started)
        guard let index else {
            response.respond(status: 404, body: "404 Not Found: no plugin of pool \(pool.name) is routed for \(request.routedPath)\n")
            return .complete
        }
        let plugin = plugins[index]
        pluginName = plugin.settings.name
        if pool.maxBodySize > 0, let length = request.known.content_length.map({ strtoull($0, nil, 10) }), length > UInt64(pool.maxBodySize) {
            // Before the plugin reads a byte of it.
            ForkliftLogging.logger.warning("refused a body of \(length) bytes for \(request.routedPath): above max_body_size (\(pool.maxBodySize) bytes)")
            response.respond(status: 413, body: "413 Content Too Large: the body may have at most \(pool.maxBodySize) bytes\n")
            return .complete
        }
        let failure = plugin.handle(request.opaque, response.opaque)
        if request.exceededBodyLimit && !response.headersSent {
            // A body longer than its CONTENT_LENGTH said (or without one): a client error, not the plugin's.
            ForkliftLogging.logger.warning("refused the body of \(request.routedPath) after \(pool.maxBodySize) bytes: above max_body_size")
            response.respond(status: 413, body: "413 Content Too Large: the body may have at most \(pool.maxBodySize) bytes\n")
            return .complete
        }
        if let failure {
            ForkliftLogging.logger.error("plugin \(plugin.settings.name) failed on \(request.routedPath): \(failure)")
            if earlyFinish?.finished == true {
                // After its response was finished: the client has all of it, nothing to undo.
                return .complete
            }
            if response.headersSent {
                // Part of the response is already on the wire: the status cannot change now,
                // and the client must not take what it got for the whole response.
                ForkliftLogging.logger.error("the response to \(request.routedPath) was already started; the connection is aborted")
                return .abort
            }
            response.respond(status: 500, body: "500 Internal Server Error\n")
            return .complete
        }
        response.sendHeadersIfNeeded()
        return .complete
    }

    /// libfcgi closed the connection (or kept it): the request is done.
    mutating func finished(kept: Bool) {
        let cpu = ProcessCPU.used()
        slot.markDone(status: lastStatus, cpuNanoseconds: cpu.nanoseconds &- cpuBefore, maxRSSKB: cpu.maxRSSKB, kept: kept, now: .now())
        cpuBefore = cpu.nanoseconds
        accessLog?.flush()
        counters.requestFinished()
    }

    /// The request line into the slot, straight from libfcgi's params: no copies but the slot's.
    private func markRunning(_ request: RequestBridge, plugin: [UInt8], now: MonotonicInstant) {
        let known = request.known
        let method = known.request_method
        let uri = known.request_uri ?? known.script_name
        let length = known.content_length.map { strtoull($0, nil, 10) } ?? 0
        plugin.withUnsafeBytes { pluginBytes in
            slot.markRunning(method: Self.bytes(method), uri: Self.bytes(uri), plugin: pluginBytes, contentLength: length, now: now)
        }
    }

    private static func bytes(_ text: UnsafePointer<CChar>?) -> UnsafeRawBufferPointer {
        guard let text else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: text, count: strlen(text))
    }
}
