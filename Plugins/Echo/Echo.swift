import ForkliftPlugin

#if canImport(Glibc)
import Glibc
#endif

/// Echoes the request back as plain text: the method, the routed path, the worker's pid,
/// every FastCGI param in order, then the body byte for byte.
///
/// ```
/// method: POST
/// path: /echo/x
/// pid: 4242
/// param: REQUEST_METHOD=POST
/// ...
/// body-length: 5
///
/// hello
/// ```
final class Echo: ForkliftHandler {
    static let name = "echo"
    static let version = "1.0.0"

    /// Largest body echoed; larger ones fail with 413.
    let maxBody: Int

    init(context: PluginContext) throws {
        maxBody = try context.settings.int("max_body") ?? 16 << 20
    }

    func handle(_ request: Request, _ response: Response) throws {
        let body: [UInt8]
        do {
            body = try request.body(limit: maxBody)
        } catch .tooLarge {
            try response.setStatus(413)
            try response.write("request body larger than \(maxBody) bytes\n")
            return
        } catch {
            throw error // the client went away: nothing to answer
        }
        var head = "method: \(request.method)\npath: \(request.path)\npid: \(getpid())\n"
        for (name, value) in request.params {
            head += "param: \(name)=\(value)\n"
        }
        head += "body-length: \(body.count)\n\n"
        try response.write(head)
        try response.write(body)
    }
}

@_cdecl("forklift_plugin_entry") public func forkliftPluginEntry() -> UnsafeRawPointer { export(Echo.self) }
