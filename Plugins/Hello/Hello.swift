import ForkliftPlugin

/// The smallest useful plugin: answers every request with a greeting.
///
/// Settings: `greeting` (default "Hello").
final class Hello: ForkliftHandler {
    static let name = "hello"
    static let version = "1.0.0"

    let greeting: String
    /// The whole body, built once before the fork (as the C responder and PHP write a
    /// constant): a request only copies it out.
    private let body: [UInt8]

    /// Runs once in the pool's host, before the workers are forked.
    init(context: PluginContext) throws {
        greeting = context.settings["greeting"] ?? "Hello"
        body = Array("\(greeting), world!\n".utf8)
    }

    func handle(_ request: Request, _ response: Response) throws {
        try response.write(body)
    }
}

@_cdecl("forklift_plugin_entry") public func forkliftPluginEntry() -> UnsafeRawPointer { export(Hello.self) }
