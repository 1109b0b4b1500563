import CFastCGI
import ForkliftLogging
import ForkliftSystem
import Glibc

/// PHP-FPM's `fastcgi_finish_request()`: a handler completes its response and goes on with
/// slow work (statistics, conversions) while the client already has everything.
///
/// Finishing ends libfcgi's output streams, which sends FCGI_END_REQUEST; what is left of the
/// body is read (so nothing unread makes the close a reset that could cost the client the
/// response's tail); then the connection is given away at once: a kept one is parked with the
/// master, so that another worker serves the client's next request, any other is closed. The
/// request itself stays open: its params stay valid, the slot says running, and
/// `request_terminate_timeout` still counts, until the handler returns. One per worker.
final class EarlyFinish {
    private let request: UnsafeMutablePointer<FCGX_Request>
    private let parkFD: Int32
    private let drainBuffer: UnsafeMutableRawBufferPointer
    /// The worker's kept-connection wait, which the connection leaves before it is parked.
    private let keptSet: KeptWaitSet?
    /// The current request's response was finished early.
    private(set) var finished = false

    init(request: UnsafeMutablePointer<FCGX_Request>, parkFD: Int32, drainBuffer: UnsafeMutableRawBufferPointer, keptSet: KeptWaitSet? = nil) {
        self.request = request
        self.parkFD = parkFD
        self.drainBuffer = drainBuffer
        self.keptSet = keptSet
    }

    /// A new request begins.
    func reset() { finished = false }

    /// Ends the response now (the caller has sent the headers); false if the client was gone.
    func finish() -> Bool {
        guard !finished else { return true }
        finished = true
        // err first: out's close writes END_REQUEST once it is the last writer (libfcgi).
        let sent = FCGX_FClose(request.pointee.err) == 0 && FCGX_FClose(request.pointee.out) == 0
        let connection = request.pointee.ipcFd
        let inStep = sent && FCGX_GetError(request.pointee.in) == 0 && Self.drainBody(request.pointee.in, drainBuffer)
        if inStep && request.pointee.keepConnection != 0 && RequestStart.pending(connection) > 0 {
            // The client already sent its next request, and the worker read its start: the
            // connection stays, and this worker serves that request when the handler returns.
            return sent
        }
        keptSet?.forget(connection) // parked or closed now, while the descriptor is still ours
        if inStep && request.pointee.keepConnection != 0 && parkFD >= 0
            && Self.park(connection, idleSince: .now(), over: parkFD) {
            // The master has its copy: ours goes, without a shutdown that would end theirs.
            closeDescriptor(connection)
        } else {
            if !inStep { shutdown(connection, Int32(SHUT_WR)) }
            closeDescriptor(connection)
        }
        // libfcgi's finish later frees the request without touching the descriptor.
        request.pointee.ipcFd = -1
        request.pointee.keepConnection = 0
        return sent
    }

    /// The most unread body drained, after the plugin returned or finished early.
    static let drainLimit = 1 << 20

    /// Reads what the plugin left of the body, so the connection's next request starts at a
    /// record boundary. False if there was too much (or the client broke the stream).
    static func drainBody(_ stream: UnsafeMutablePointer<FCGX_Stream>, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        var drained = 0
        while drained <= drainLimit {
            let count = FCGX_GetStr(buffer.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(min(buffer.count, 65536)), stream)
            if count <= 0 { return FCGX_GetError(stream) == 0 }
            drained += Int(count)
        }
        return false
    }

    /// How long parking may wait for room in the master's queue.
    static let parkWait = 0.5

    /// Sends an idle kept connection to the master (see `ParkingChannel`); false if it cannot.
    static func park(_ connection: Int32, idleSince: MonotonicInstant, over parkFD: Int32) -> Bool {
        let giveUpAt = MonotonicInstant.now().advanced(bySeconds: parkWait)
        while true {
            do {
                try ParkingChannel.send(connection, idleSince: idleSince, over: parkFD)
                return true
            } catch let error as SystemError where error.errno == EAGAIN && MonotonicInstant.now() < giveUpAt {
                // Many workers park at once (a generation retired): the master reads its queue.
                _ = try? waitForEvents([PollRequest(fd: parkFD, writable: true)], timeoutSeconds: 0.01)
            } catch {
                ForkliftLogging.logger.warning("cannot park a kept connection (\(error)); closing it")
                return false
            }
        }
    }
}
