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
///
/// One instance is made per `[pool.POOL.plugin.NAME]` table, in the host; every worker gets
/// its own copy-on-write copy of it by fork, so what a worker changes in the instance stays in
/// that worker. A worker serves one request at a time, so `handle` is never called
/// concurrently within a process.
public protocol ForkliftHandler: AnyObject {
    /// Shown in logs and by `forklift check`. Defaults to the type's name.
    static var name: String { get }
    /// Shown in logs and by `forklift check`. Defaults to "0.0.0".
    static var version: String { get }

    /// The preload hook: runs once, in the pool's host process, before any worker is forked.
    ///
    /// Load what every request needs here, into a ``SharedArena`` or a ``MappedFile`` so that
    /// it stays shared (<doc:SharedPreloadedMemory>). Read the configuration from `context`.
    /// Don't start threads (Dispatch, `Task`, actors and `Thread` all do): the host refuses to
    /// fork a process with more than one thread. Throwing stops the pool from starting (a
    /// reload is rolled back) with the error's description as the reason.
    init(context: PluginContext) throws

    /// Runs in the host right after the initialiser, still before fork; by default nothing.
    ///
    /// Touch what the handler initialises lazily (a first lookup, a first formatted string,
    /// a `static let`), so that it is built once here and shared, not built on fresh private
    /// pages in every worker on its first request. Throwing fails like the initialiser.
    func warmUp() throws

    /// Runs in each worker right after fork, before its first request; by default nothing.
    ///
    /// Open sockets and database connections and start threads here. Throwing stops the pool
    /// from starting; later, a worker whose init fails is replaced with growing delays.
    func workerInit() throws

    /// Answers one request, in a worker.
    ///
    /// `request` and `response` are valid during this call only: don't keep them or hand
    /// them to another thread that outlives it. A thrown error becomes a 500 with a generic
    /// body and its description is logged, unless part of the response was already written
    /// (then the connection is aborted there); the worker goes on serving. TERM, INT and QUIT
    /// are blocked while it runs, so a graceful stop never interrupts its system calls, and
    /// `request_terminate_timeout` kills the worker if it runs too long.
    func handle(_ request: Request, _ response: Response) throws

    /// Runs in a worker leaving normally (recycled after `max_requests`, or stopped); by
    /// default nothing. Not after a crash or a kill: don't rely on it for data that must
    /// not be lost.
    func workerExit()
}

extension ForkliftHandler {
    /// The type's name in lower case (`Greeter` is "greeter").
    public static var name: String { String(describing: self).lowercased() }
    /// "0.0.0": declare your own to tell generations apart in `forklift reload`'s output.
    public static var version: String { "0.0.0" }
    /// Does nothing.
    public func warmUp() throws {}
    /// Does nothing.
    public func workerInit() throws {}
    /// Does nothing.
    public func workerExit() {}
}

/// An error with a message of your choosing, for hooks that fail.
///
/// The host logs `description` with the plugin's name: from the initialiser it is the reason
/// the pool did not start, from `handle` the line beside the 500.
///
/// ```swift
/// guard let path = context.settings["model.path"] else { throw PluginError("settings: model.path is required") }
/// ```
public struct PluginError: Error, CustomStringConvertible {
    /// The message, as given.
    public let description: String
    /// An error whose description is `description`.
    public init(_ description: String) { self.description = description }
}
