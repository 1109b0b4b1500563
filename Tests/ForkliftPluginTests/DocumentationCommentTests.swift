import Foundation
import Testing

/// Every public symbol of the SDK (ForkliftPlugin) and of ForkliftTesting has a `///` comment:
/// a scan of their sources, so a symbol added without one, or a comment removed, fails here.
///
/// DocC's `--experimental-documentation-coverage` says the same, but takes 10 s with a warm
/// build and about a minute from a clean one (it builds the DocC plugin and SymbolKit), and
/// cannot run inside `swift test`, which holds the build directory's lock. This takes
/// milliseconds.
@Suite struct DocumentationCommentTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test(arguments: ["Sources/ForkliftPlugin", "Sources/ForkliftTesting"])
    func everyPublicSymbolHasADocComment(_ module: String) throws {
        let directory = Self.packageRoot.appendingPathComponent(module)
        let files = try FileManager.default.subpathsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".swift") }.sorted()
        #expect(!files.isEmpty, "no sources under \(directory.path)")
        var found = 0
        var undocumented: [String] = []
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let declarations = PublicDeclarations.find(in: text)
            found += declarations.count
            undocumented += declarations.filter { !$0.documented }.map { "\(module)/\(file):\($0.line): \($0.name)" }
        }
        #expect(found >= 30, "only \(found) public declarations found in \(module): is the scanner broken?")
        #expect(undocumented.isEmpty, """
            public declarations without a /// comment (say what it is for and what a plugin author \
            must know: valid when, throws what, runs in which process, costs):
            \(undocumented.joined(separator: "\n"))
            """)
    }

    /// The scanner on a sample of every shape it must get right.
    @Test func theScannerFindsUndocumentedPublicDeclarations() {
        let sample = #"""
            import Glibc
            @_spi(Testing) import ForkliftPlugin

            /// Documented, above its attribute.
            @_spi(Testing)
            public enum Hooks {
                /// Documented, over two lines.
                public static func preload(_ type: Int,
                                           api: Int) throws -> Int { type }
                public static func release() {}
                static func internalHelper() {}
            }

            public protocol Handler: AnyObject {
                /// Documented requirement.
                init(context: Int) throws
                func handle(_ request: Int)
                static var name: String { get }
            }

            /// Documented.
            public enum Level: Int { case debug, info }

            extension Handler {
                public static var name: String { "x" }
                func notPublic() {}
            }

            struct Internal {
                public var inInternalType: Int
            }

            public extension String {
                var implicitlyPublic: Int { 0 }
                private var hidden: Int { 0 }
            }

            #if DEBUG
            /// Documented, under #if.
            @_cdecl("forklift_sdk_debug_build") public func debugBuild() {}
            #endif

            /// Documented.
            public final class Box {
                let text = "public func inAString() { \(1) } \(["}"].count)"
                let multi = """
                    public func inAMultilineString() {
                    """
                /* public func inABlockComment() { /* nested */ } */
                /// Documented.
                public init() {
                    let local = { () -> Int in
                        return 1 }
                    func nested() {}
                    _ = local
                }
                public private(set) var count = 0
                nonisolated(unsafe) public static var shared: Box?
                public subscript(index: Int) -> Int { index }
                /// Documented.
                public enum Kind {
                    /// Documented.
                    case one
                    case two(Int)
                }
            }
            """#
        let declarations = PublicDeclarations.find(in: sample)
        #expect(declarations.filter { !$0.documented }.map(\.name) == [
            "func release", "protocol Handler", "func handle", "var name", "case debug",
            "var name", "var implicitlyPublic", "var count", "var shared", "subscript", "case two",
        ])
        #expect(declarations.filter(\.documented).map(\.name) == [
            "enum Hooks", "func preload", "init", "enum Level", "func debugBuild", "class Box", "init",
            "enum Kind", "case one",
        ])
    }
}

/// A scan of Swift source for the declarations a module makes public: `public` or `open` ones
/// in public types, members of public protocols, cases of public enums, members of `public
/// extension`s. Not a parser: it knows strings, comments, attributes, modifiers and braces,
/// which is what telling a declaration's doc comment and visibility takes. Bodies (functions,
/// accessors, closures) are skipped: nothing in them is public.
enum PublicDeclarations {
    struct Declaration: Equatable {
        /// "func handle", "case interrupted", "init".
        let name: String
        let line: Int
        let documented: Bool
    }

    enum Token: Equatable {
        case word(String, line: Int)
        case punct(UInt8)
        case docComment
        case newline
    }

    static let modifiers: Set<String> = [
        "public", "open", "package", "internal", "fileprivate", "private", "static", "class", "final",
        "override", "mutating", "nonmutating", "convenience", "required", "lazy", "weak", "unowned",
        "dynamic", "indirect", "nonisolated", "isolated", "consuming", "borrowing", "optional",
        "prefix", "postfix", "infix", "distributed", "__consuming",
    ]
    static let keywords: Set<String> = [
        "func", "init", "deinit", "subscript", "var", "let", "case", "typealias", "associatedtype",
        "struct", "class", "enum", "protocol", "extension", "actor", "macro", "operator", "precedencegroup",
    ]
    static let types: Set<String> = ["struct", "class", "enum", "protocol", "actor"]

    /// What a `{` opens.
    enum Scope {
        /// A type or extension, with what it makes of its members.
        case container(keyword: String, visibility: Visibility)
        /// A function, accessor or closure body.
        case body
    }

    enum Visibility {
        /// A public type or `public extension`.
        case visible
        /// An extension without a modifier: members are public when they say so.
        case transparent
        /// Not public: nothing inside is.
        case hidden
    }

    static func find(in source: String) -> [Declaration] {
        let tokens = tokenize(Array(source.utf8))
        var found: [Declaration] = []
        var scopes: [Scope] = []
        var pending: Scope?
        var documented = false
        var atStatementStart = true
        var index = 0
        while index < tokens.count {
            let token = tokens[index]
            let inBody = scopes.contains { if case .body = $0 { true } else { false } }
            if atStatementStart, !inBody, let declaration = parseHeader(tokens, from: index) {
                index = declaration.end
                atStatementStart = false
                let visibility = visibility(of: declaration, in: scopes)
                if declaration.keyword != "extension" {
                    if visibility == .visible {
                        found.append(Declaration(name: declaration.name, line: declaration.line, documented: documented))
                    }
                    pending = types.contains(declaration.keyword) ? .container(keyword: declaration.keyword, visibility: visibility) : .body
                } else {
                    let modifiers = declaration.modifiers
                    let extensionVisibility: Visibility = modifiers.contains("public") || modifiers.contains("open") ? .visible
                        : modifiers.isDisjoint(with: ["private", "fileprivate", "internal", "package"]) ? .transparent : .hidden
                    pending = .container(keyword: "extension", visibility: scopes.allSatisfy(isOpen) ? extensionVisibility : .hidden)
                }
                documented = false
                continue
            }
            switch token {
            case .docComment:
                documented = true
            case .newline:
                atStatementStart = true
            case .punct(UInt8(ascii: "{")):
                scopes.append(pending ?? .body)
                pending = nil
                atStatementStart = true
                documented = false
            case .punct(UInt8(ascii: "}")):
                if !scopes.isEmpty { scopes.removeLast() }
                atStatementStart = true
                documented = false
            case .punct(UInt8(ascii: ";")):
                atStatementStart = true
                documented = false
            default:
                atStatementStart = false
                documented = false
            }
            index += 1
        }
        return found
    }

    struct Header {
        let keyword: String
        let name: String
        let modifiers: Set<String>
        let line: Int
        /// The index of the token after the keyword.
        let end: Int
    }

    /// Attributes (`@name`, `@name(...)`), modifiers (`private(set)` too), then a declaration
    /// keyword, across line breaks; nil when the statement at `start` is no declaration.
    static func parseHeader(_ tokens: [Token], from start: Int) -> Header? {
        var index = start
        var modifiers: Set<String> = []
        func skipNewlines() {
            while index < tokens.count, tokens[index] == .newline || tokens[index] == .docComment { index += 1 }
        }
        func skipParenthesised() {
            guard index < tokens.count, tokens[index] == .punct(UInt8(ascii: "(")) else { return }
            var depth = 0
            repeat {
                if tokens[index] == .punct(UInt8(ascii: "(")) { depth += 1 }
                if tokens[index] == .punct(UInt8(ascii: ")")) { depth -= 1 }
                index += 1
            } while index < tokens.count && depth > 0
        }
        while index < tokens.count {
            switch tokens[index] {
            case .punct(UInt8(ascii: "@")):
                index += 1
                guard index < tokens.count, case .word = tokens[index] else { return nil }
                index += 1
                skipParenthesised()
                skipNewlines()
            case .word(let word, let line):
                let next = nextWord(tokens, after: index)
                // `class` before another keyword or modifier is a modifier (`class func`).
                if keywords.contains(word), !(word == "class" && next.map { keywords.contains($0) || Self.modifiers.contains($0) } == true) {
                    var name = word
                    if !["init", "deinit", "subscript"].contains(word), let next { name += " " + next }
                    return Header(keyword: word, name: name, modifiers: modifiers, line: line, end: index + 1)
                }
                guard Self.modifiers.contains(word) else { return nil }
                modifiers.insert(word)
                index += 1
                skipParenthesised()
                skipNewlines()
            default:
                return nil
            }
        }
        return nil
    }

    static func nextWord(_ tokens: [Token], after index: Int) -> String? {
        guard index + 1 < tokens.count, case .word(let word, _) = tokens[index + 1] else { return nil }
        return word
    }

    static func isOpen(_ scope: Scope) -> Bool {
        if case .container(_, let visibility) = scope { return visibility != .hidden }
        return false
    }

    static func visibility(of header: Header, in scopes: [Scope]) -> Visibility {
        guard scopes.allSatisfy(isOpen) else { return .hidden }
        if header.modifiers.contains("public") || header.modifiers.contains("open") { return .visible }
        if !header.modifiers.isDisjoint(with: ["private", "fileprivate", "internal", "package"]) { return .hidden }
        guard case .container(let keyword, let visibility)? = scopes.last, visibility == .visible else { return .hidden }
        switch keyword {
        case "protocol", "extension": return .visible
        case "enum": return header.keyword == "case" ? .visible : .hidden
        default: return .hidden
        }
    }

    /// Words, punctuation, doc comments and line breaks; string literals, other comments and
    /// `#if`/`#else`/`#endif` lines dropped.
    static func tokenize(_ bytes: [UInt8]) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        var line = 1
        func at(_ offset: Int) -> UInt8 { index + offset < bytes.count ? bytes[index + offset] : 0 }
        func isWordByte(_ byte: UInt8) -> Bool {
            byte >= 0x80 || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$")
                || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        func atLineStart() -> Bool {
            var back = index - 1
            while back >= 0, bytes[back] == UInt8(ascii: " ") || bytes[back] == UInt8(ascii: "\t") { back -= 1 }
            return back < 0 || bytes[back] == UInt8(ascii: "\n")
        }
        /// Past a string literal starting at `index` (after any `#`s, at the quote), with its
        /// interpolations and the strings inside them.
        func skipString(hashes: Int) {
            let multiline = at(0) == UInt8(ascii: "\"") && at(1) == UInt8(ascii: "\"") && at(2) == UInt8(ascii: "\"")
            index += multiline ? 3 : 1
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\n") { line += 1 }
                if byte == UInt8(ascii: "\\"), (0..<hashes).allSatisfy({ at(1 + $0) == UInt8(ascii: "#") }) {
                    index += 1 + hashes
                    if at(0) == UInt8(ascii: "(") { skipInterpolation() } else { index += 1 }
                    continue
                }
                let closes = multiline ? byte == UInt8(ascii: "\"") && at(1) == UInt8(ascii: "\"") && at(2) == UInt8(ascii: "\"")
                    : byte == UInt8(ascii: "\"")
                if closes {
                    let after = multiline ? 3 : 1
                    if (0..<hashes).allSatisfy({ at(after + $0) == UInt8(ascii: "#") }) {
                        index += after + hashes
                        return
                    }
                }
                index += 1
            }
        }
        func skipInterpolation() {
            var depth = 0
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\n") { line += 1 }
                if byte == UInt8(ascii: "\"") { skipString(hashes: 0); continue }
                if byte == UInt8(ascii: "(") { depth += 1 }
                if byte == UInt8(ascii: ")") {
                    depth -= 1
                    if depth == 0 { index += 1; return }
                }
                index += 1
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\n") {
                tokens.append(.newline)
                line += 1
                index += 1
            } else if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") {
                index += 1
            } else if byte == UInt8(ascii: "/"), at(1) == UInt8(ascii: "/") {
                if at(2) == UInt8(ascii: "/"), at(3) != UInt8(ascii: "/") { tokens.append(.docComment) }
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            } else if byte == UInt8(ascii: "/"), at(1) == UInt8(ascii: "*") {
                if at(2) == UInt8(ascii: "*"), at(3) != UInt8(ascii: "/") { tokens.append(.docComment) }
                var depth = 0
                while index < bytes.count {
                    if bytes[index] == UInt8(ascii: "\n") { line += 1 }
                    if bytes[index] == UInt8(ascii: "/"), at(1) == UInt8(ascii: "*") { depth += 1; index += 2; continue }
                    if bytes[index] == UInt8(ascii: "*"), at(1) == UInt8(ascii: "/") {
                        depth -= 1
                        index += 2
                        if depth == 0 { break }
                        continue
                    }
                    index += 1
                }
            } else if byte == UInt8(ascii: "\"") {
                skipString(hashes: 0)
                tokens.append(.word("\"\"", line: line))
            } else if byte == UInt8(ascii: "#") {
                var hashes = 0
                while at(hashes) == UInt8(ascii: "#") { hashes += 1 }
                if at(hashes) == UInt8(ascii: "\"") {
                    index += hashes
                    skipString(hashes: hashes)
                    tokens.append(.word("\"\"", line: line))
                    continue
                }
                var word = ""
                var end = index + 1
                while end < bytes.count, isWordByte(bytes[end]) { word.append(Character(UnicodeScalar(bytes[end]))); end += 1 }
                if atLineStart(), ["if", "elseif", "else", "endif", "warning", "error", "sourceLocation"].contains(word) {
                    while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
                } else {
                    tokens.append(.punct(byte))
                    index += 1
                }
            } else if byte == UInt8(ascii: "`") {
                var end = index + 1
                while end < bytes.count, bytes[end] != UInt8(ascii: "`"), bytes[end] != UInt8(ascii: "\n") { end += 1 }
                tokens.append(.word(String(decoding: bytes[(index + 1)..<end], as: UTF8.self), line: line))
                index = min(end + 1, bytes.count)
            } else if isWordByte(byte) {
                var end = index
                while end < bytes.count, isWordByte(bytes[end]) { end += 1 }
                tokens.append(.word(String(decoding: bytes[index..<end], as: UTF8.self), line: line))
                index = end
            } else {
                tokens.append(.punct(byte))
                index += 1
            }
        }
        return tokens
    }
}
