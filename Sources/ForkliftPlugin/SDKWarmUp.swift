/// The SDK's own warm-up, in the host before fork: the first use of a generic type or of
/// string formatting makes the Swift runtime build and cache metadata (lazily, on the heap).
/// Done here, those caches are built once and shared by every worker instead of being built
/// — and dirtying fresh pages — in each of them on its first request.
enum SDKWarmUp {
    nonisolated(unsafe) static var done = false

    static func run() {
        guard !done else { return }
        done = true
        // The types and paths every request goes through.
        let types: [Any.Type] = [Request.self, Response.self, PluginError.self, SharedArray<UInt8>.self,
                                 SharedArray<UInt32>.self, SharedArray<UInt64>.self, SharedStringDictionary.self]
        var text = types.map { String(describing: $0) }.joined(separator: ",")
        text += "\(PluginError("warm-up"))"
        _ = String(decoding: Array(text.utf8), as: UTF8.self)
        _ = [(name: text, value: text)].first { $0.name.hasPrefix("=") }
    }
}
