import Glibc

/// A failed system call: which call, on what, and the errno it returned.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno)))"
    }
}

/// Runs a syscall wrapper, retrying on EINTR, throwing a `SystemError` named `call` on -1.
@discardableResult
@inline(__always)
public func retryingSyscall<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(call(), errno: code)
    }
}
