/// A Forklift request handler written in Swift.
///
/// ```swift
/// import ForkliftPlugin
///
/// final class Hello: ForkliftHandler {
///     static let version = "1.0.0"
///     let greeting: String
///     init(context: PluginContext) throws {          // in the host, before fork
///         greeting = context.settings["greeting"] ?? "Hello"
///     }
///     func handle(_ request: Request, _ response: Response) throws {
///         try response.write("\(greeting), world!\n")
///     }
/// }
///
/// @_cdecl("forklift_plugin_entry") public func entry() -> UnsafeRawPointer { export(Hello.self) }
/// ```
///
/// - The initialiser is the preload hook: it runs once in the pool's host process before any
///   worker is forked, so what it loads is shared copy-on-write by every worker. Throwing
///   stops the pool from starting, with your error as the reason.
/// - `warmUp()` runs in the host right after the initialiser, still before fork: touch the
///   lazily initialised globals and code paths your handler uses (a first lookup, a first
///   formatted string), so that they are built once and shared, not once per worker.
/// - `workerInit()` runs in each worker right after fork: open connections, start threads here.
/// - `handle` runs per request. A thrown error becomes a 500 with a generic body and a
///   logged message; the worker goes on serving.
/// - `workerExit()` runs when a worker leaves normally (recycled or stopped).
public protocol ForkliftHandler: AnyObject {
    /// Shown in logs and by `forklift check`. Defaults to the type's name.
    static var name: String { get }
    /// Shown in logs and by `forklift check`. Defaults to "0.0.0".
    static var version: String { get }

    init(context: PluginContext) throws
    func warmUp() throws
    func workerInit() throws
    func handle(_ request: Request, _ response: Response) throws
    func workerExit()
}

extension ForkliftHandler {
    public static var name: String { String(describing: self).lowercased() }
    public static var version: String { "0.0.0" }
    public func warmUp() throws {}
    public func workerInit() throws {}
    public func workerExit() {}
}

/// An error with a message of your choosing, for hooks that fail.
public struct PluginError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
