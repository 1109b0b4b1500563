import CFastCGI
import CForkliftSys
import Glibc

/// The records at the start of a request, read by the worker itself before libfcgi sees them
/// (`AcceptLoop.readRequestStart`, checked by `RecordScanner`). They are read from the socket
/// once, into a buffer libfcgi's own reads then take them from (its `OS_Read` is the one in
/// request_start.c): one system call per request fewer than peeking at them and letting
/// libfcgi read them again. A connection is waited on, parked or closed only when nothing the
/// worker read of it is still held (`pending`): what is, is served first.
///
/// Where libfcgi's reads do not come through (a libfcgi built to bind its own `OS_Read`),
/// the worker only peeks, as it did before; `prepare` finds out which.
enum RequestStart {
    /// Sets the process's buffer up for requests whose records up to the end of their params
    /// take at most `capacity` bytes; whether libfcgi reads through it (and writes through
    /// OS_Write: ConnectionTimeouts counts on both).
    @discardableResult
    static func prepare(capacity: Int) -> Bool {
        guard forklift_request_start_init(capacity, 1) == 0 else { fatalError("cannot allocate the request buffer") }
        if libfcgiGoesThroughIt() { return true }
        forklift_request_start_init(capacity, 0)
        return false
    }

    /// Whether bytes are read from the socket (and served to libfcgi), not only peeked at.
    static var consumes: Bool { forklift_request_start_consuming() != 0 }

    /// Reads what `connection` has sent into the buffer, after what it holds (no wait): recv's
    /// result; -1 with ENOBUFS when the buffer is full.
    static func receive(_ connection: Int32) -> Int { forklift_request_start_receive(connection) }

    /// What is held that libfcgi has not read yet.
    static var bytes: UnsafeRawBufferPointer {
        var count = 0
        let start = forklift_request_start_bytes(&count)
        return UnsafeRawBufferPointer(start: start, count: count)
    }

    static var isFull: Bool { forklift_request_start_full() != 0 }

    /// The first `count` bytes held were a record the worker answers itself: they are gone.
    static func consume(_ count: Int, of connection: Int32) -> Bool { forklift_request_start_consume(connection, count) == 0 }

    /// Bytes of `connection` held and not read by libfcgi yet (always 0 when peeking).
    static func pending(_ connection: Int32) -> Int { forklift_request_start_pending(connection) }

    /// A connection is new to the worker (accepted, or sent back by the master): nothing
    /// held is its.
    static func begin(_ connection: Int32) { forklift_request_start_reset(connection) }

    /// The connection is gone (closed, given away): nothing held is anyone's.
    static func release() { forklift_request_start_reset(-1) }

    /// Whether a request start held for a connection (not sent on it) is what FCGX_Accept_r
    /// reads (the socket it would otherwise read is empty and non-blocking, so it fails at
    /// once), and its END_REQUEST goes out through this process's OS_Write.
    static func libfcgiGoesThroughIt() -> Bool {
        guard FCGX_Init() == 0 else { return false } // once per process; the worker's own call is a no-op after it
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else { return false }
        defer {
            close(pair[0])
            forklift_request_start_reset(-1)
        }
        // BEGIN_REQUEST (responder, keep the connection), the end of PARAMS, the end of STDIN.
        let records: [UInt8] = [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0,
                                1, 4, 0, 1, 0, 0, 0, 0,
                                1, 5, 0, 1, 0, 0, 0, 0]
        _ = records.withUnsafeBytes { forklift_request_start_load(pair[1], $0.baseAddress, $0.count) }
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer { request.deallocate() }
        request.initialize(to: FCGX_Request())
        FCGX_InitRequest(request, -1, 0)
        request.pointee.ipcFd = pair[1]
        request.pointee.keepConnection = 1
        let read = FCGX_Accept_r(request) >= 0 // on failure libfcgi closed the descriptor
        guard read else { return false }
        let writes = forklift_io_writes()
        FCGX_Finish_r(request) // its END_REQUEST goes to pair[0]; the connection is kept
        close(pair[1])
        return forklift_io_writes() > writes
    }
}
