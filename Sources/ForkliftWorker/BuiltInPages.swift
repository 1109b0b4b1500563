import ForkliftConfig
import ForkliftIPC
import ForkliftStatus
import ForkliftSystem

/// The pages Forklift answers itself, before any plugin: `status_path` (PHP-FPM's status
/// page, from the scoreboard) and `ping_path` (a health check answering `ping_response`).
/// Workers answer them on the pool's socket; the host's status responder on `status_listen`.
struct BuiltInPages {
    enum Page { case status, ping }

    let pool: PoolSettings
    let generation: Int
    let board: GenerationBoard
    let counters: PoolCounters

    /// PHP-FPM's headers on both: never cache a health check or a status.
    static let noCache = [("Expires", "Thu, 01 Jan 1970 00:00:00 GMT"), ("Cache-Control", "no-cache, no-store, must-revalidate, max-age=0")]

    /// The paths as bytes, compared with the request's without building a String.
    private let statusPath: [UInt8]?
    private let pingPath: [UInt8]?

    init(pool: PoolSettings, generation: Int, board: GenerationBoard, counters: PoolCounters) {
        self.pool = pool
        self.generation = generation
        self.board = board
        self.counters = counters
        statusPath = pool.statusPath.map { Array($0.utf8) }
        pingPath = pool.pingPath.map { Array($0.utf8) }
    }

    func page(for path: UnsafeRawBufferPointer) -> Page? {
        if let statusPath, path.elementsEqual(statusPath) { return .status }
        if let pingPath, path.elementsEqual(pingPath) { return .ping }
        return nil
    }

    /// The name the scoreboard shows in the worker's "script" field.
    static func label(_ page: Page) -> [UInt8] { Array((page == .status ? "(status)" : "(ping)").utf8) }

    func respond(_ page: Page, query: String, response: ResponseBridge) {
        switch page {
        case .ping:
            response.respond(status: 200, body: pool.pingResponse, headers: Self.noCache)
        case .status:
            let (format, full) = StatusFormat.parse(query: query)
            let snapshot = BoardReader.read(board)
            let status = PoolStatus(pool: pool.name, processManager: pool.processManager.rawValue, generation: generation, role: "live",
                                    counters: counters.read(), board: snapshot,
                                    maxChildren: snapshot.hostState?.workerTarget ?? pool.maxChildren,
                                    slowlogTimeout: pool.requestSlowlogTimeout)
            response.respond(status: 200, body: StatusPage.render(status, format: format, full: full), contentType: format.contentType,
                             headers: Self.noCache)
        }
    }
}
