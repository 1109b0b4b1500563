import Glibc

/// A point on CLOCK_MONOTONIC, for deadlines and durations that ignore wall-clock jumps.
public struct MonotonicInstant: Comparable, Sendable {
    public let nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> MonotonicInstant {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonotonicInstant(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }

    public func advanced(bySeconds seconds: Double) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: nanoseconds &+ UInt64(max(0, seconds) * 1e9))
    }

    /// Seconds from `self` to `later` (negative if `later` is earlier).
    public func seconds(until later: MonotonicInstant) -> Double {
        (Double(later.nanoseconds) - Double(nanoseconds)) / 1e9
    }

    public static func < (a: MonotonicInstant, b: MonotonicInstant) -> Bool { a.nanoseconds < b.nanoseconds }
}

/// Wall-clock time of a monotonic instant (for logs that print dates).
public enum WallClock {
    /// Seconds since the epoch at `instant` (now minus how long ago it was).
    public static func realtime(at instant: MonotonicInstant) -> Double {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        let now = Double(wall.tv_sec) + Double(wall.tv_nsec) / 1e9
        return now - max(0, instant.seconds(until: .now()))
    }
}
