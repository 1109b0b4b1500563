import Foundation

/// Work run on another thread (a slow request, a `forklift reload` that waits for its
/// outcome) while the test looks at the server; `wait` collects the outcome.
public final class InBackground<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var outcome: Result<Value, Error>?

    public init(_ body: @escaping @Sendable () throws -> Value) {
        Thread { [self] in
            let result = Result { try body() }
            lock.withLock { outcome = result }
        }.start()
    }

    /// The outcome, or nil if it is not there within `timeout` seconds.
    public func wait(timeout: Double = 60) -> Result<Value, Error>? {
        _ = ForkliftServer.eventually(timeout: timeout) { lock.withLock { outcome != nil } }
        return lock.withLock { outcome }
    }
}
