import ForkliftPlugin

#if canImport(Glibc)
import Glibc
#endif

/// Build 2.0.0 of the "versioned" test plugin (its twin in VersionOne reports the other
/// version): the reload tests alternate the two. Answers "version V host H", H being the
/// pid of the host that loaded this generation.
final class Versioned: ForkliftHandler {
    static let name = "versioned"
    static let version = "2.0.0"

    init(context: PluginContext) throws {}

    func handle(_ request: Request, _ response: Response) throws {
        try response.write("version \(Self.version) host \(getppid())\n")
    }
}

@_cdecl("forklift_plugin_entry") public func forkliftPluginEntry() -> UnsafeRawPointer { export(Versioned.self) }
