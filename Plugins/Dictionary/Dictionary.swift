import ForkliftPlugin

/// Preloads a dictionary once, in the host, and answers lookups from every worker without
/// copying it: the example of shared preloaded data.
///
/// The dataset is generated (deterministic: the same settings give the same words), so the
/// example needs no download: `word-0` ... `word-N`, each with a pseudo-random definition,
/// `size_mb` MiB of keys and values in all.
///
/// Settings:
/// - `size_mb` (default 64): how much to preload in all: words, definitions and the index;
/// - `layout` (default "shared"): "shared" builds it as keyed shared data (a sealed memfd), so a
///   reload that changes only code maps the running generation's dictionary instead of
///   generating it again; "arena" keeps it in a sealed `SharedArena`, built at every reload;
///   "naive" keeps a `[String: String]`, which un-shares pages on every read — the last two
///   there to be measured, not used.
///
/// Routes (under the plugin's route, e.g. /dict): `/dict/word-42` → the definition or 404;
/// `/dict/stats` → count, size and layout.
final class Dictionary: ForkliftHandler {
    static let name = "dictionary"
    static let version = "1.0.0"

    let layout: String
    let megabytes: Int
    let shared: SharedStringDictionary?
    let naive: [String: String]?

    init(context: PluginContext) throws {
        megabytes = try context.settings.int("size_mb") ?? 64
        layout = context.settings["layout"] ?? "shared"
        let target = megabytes << 20
        switch layout {
        case "shared":
            // The words depend on size_mb and the generator only: that is the key. Raise the
            // generator's version in it when generate() changes.
            let size = megabytes
            shared = try context.sharedData(key: "generated-v1-\(size)mb", capacity: Self.capacity(target), label: "dictionary") { arena in
                context.log.info("dictionary: generating \(size) MiB of words")
                return try Self.build(into: arena, bytes: target)
            }
            naive = nil
        case "arena":
            shared = try Self.build(into: SharedArena(capacity: Self.capacity(target), label: "dictionary"), bytes: target)
            naive = nil
        case "naive":
            var words: [String: String] = [:]
            try Self.generate(bytes: target, overheadPerWord: 0) { words[$0] = $1 }
            naive = words
            shared = nil
        default:
            throw PluginError("setting layout: expected \"shared\", \"arena\" or \"naive\", got \"\(layout)\"")
        }
        context.log.info("dictionary preloaded: \(count) words, \(megabytes) MiB, \(layout) layout")
    }

    var count: Int { shared?.count ?? naive?.count ?? 0 }

    /// Room for the bytes and the index: address space, not memory.
    static func capacity(_ bytes: Int) -> Int { bytes * 2 + (64 << 20) }

    static func build(into arena: SharedArena, bytes: Int) throws -> SharedStringDictionary {
        var builder = SharedStringDictionary.Builder(arena: arena, expectedCount: bytes / 140)
        // The index costs 32 bytes a word (a 24-byte entry, two 4-byte slots).
        try generate(bytes: bytes, overheadPerWord: 32) { try builder.add(key: $0, value: $1) }
        return try builder.finish()
    }

    func handle(_ request: Request, _ response: Response) throws {
        let word = request.path.split(separator: "/").last.map(String.init) ?? ""
        if word == "stats" {
            try response.write("words \(count) size_mb \(megabytes) layout \(layout)\n")
            return
        }
        let definition = shared.flatMap { $0[word] } ?? naive?[word]
        guard let definition else {
            try response.setStatus(404)
            try response.write("no such word: \(word)\n")
            return
        }
        try response.write(definition + "\n")
    }

    /// word-0, word-1, ... with definitions of 60 to 187 pseudo-random letters, until the keys,
    /// values and `overheadPerWord` add up to `bytes`.
    static func generate(bytes: Int, overheadPerWord: Int, _ add: (String, String) throws -> Void) throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        var total = 0
        var index = 0
        var letters = [UInt8](repeating: 0, count: 200)
        while total < bytes {
            let key = "word-\(index)"
            let length = 60 + Int(next() % 128)
            for i in 0..<length { letters[i] = UInt8(ascii: "a") + UInt8(next() % 26) }
            let value = String(decoding: letters[0..<length], as: UTF8.self)
            try add(key, value)
            total += key.utf8.count + length + overheadPerWord
            index += 1
        }
    }
}

@_cdecl("forklift_plugin_entry") public func forkliftPluginEntry() -> UnsafeRawPointer { export(Dictionary.self) }
