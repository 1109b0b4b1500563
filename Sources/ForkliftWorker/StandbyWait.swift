import ForkliftLogging
import ForkliftSystem
import Glibc

/// A standby worker (standby_workers), past its worker init, waits here for its host to give
/// it a slot: the host posts the slot's number plus one to the standby's own eventfd when the
/// pool needs a worker. It has no slot until then, so nothing of it is on the scoreboard. If
/// the host dies, the parent-death signal (TERM) ends the wait.
struct StandbyWait {
    let release: EventCounter
    let signals: SignalDescriptor
    /// Slots the board has: a number out of range is no release.
    let capacity: Int

    /// The slot to serve in; nil when the worker should leave unserved (a stop signal).
    func waitForSlot() -> Int? {
        while true {
            let ready = (try? waitReadable([release.fileDescriptor, signals.fileDescriptor], timeoutSeconds: nil)) ?? []
            if ready.contains(signals.fileDescriptor) {
                for signal in signals.drain() {
                    switch signal {
                    case .term, .int, .quit: return nil
                    case .usr1: try? LogDestination.reopen() // logrotate: its log reopens while it waits, too
                    default: break
                    }
                }
            }
            guard ready.contains(release.fileDescriptor) else { continue }
            let value: UInt64
            do {
                value = try release.take()
            } catch {
                ForkliftLogging.logger.error("standby worker \(getpid()): cannot read its release: \(error); leaving")
                return nil
            }
            release.close()
            guard value >= 1, value <= UInt64(capacity) else {
                ForkliftLogging.logger.error("standby worker \(getpid()): its host named slot \(value &- 1), and the board has \(capacity); leaving")
                return nil
            }
            return Int(value - 1)
        }
    }
}
