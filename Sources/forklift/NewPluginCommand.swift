import ArgumentParser
import Foundation

/// `forklift new-plugin NAME`: a plugin in a package of its own (Package.swift, a handler, a
/// test through ForkliftTesting, a conf.d snippet) that builds and passes its test as made.
struct NewPluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new-plugin",
        abstract: "Create a plugin package (handler, test, conf.d snippet) that builds and passes its test as generated.",
        discussion: """
            The package depends on Forklift's ForkliftPlugin (the SDK) and ForkliftTesting \
            products. Then: cd NAME && swift build && swift test; add conf.d/NAME.toml's table \
            to a pool and reload.
            """
    )

    @Argument(help: "The plugin's name: letters, digits, '-' or '_', starting with a letter (e.g. greeter).")
    var name: String

    @Option(help: ArgumentHelp("Where to create it (default: ./NAME). Must not exist, or be empty.", valueName: "dir"))
    var directory: String?

    @Option(name: .customLong("forklift"), help: ArgumentHelp("The Forklift package to depend on: a local path, or a git URL with --from (default: the source tree this forklift was built from).", valueName: "path-or-url"))
    var forklift: String?

    @Option(help: ArgumentHelp("With a URL for --forklift: the lowest version to accept.", valueName: "version"))
    var from: String?

    func validate() throws {
        guard let first = name.unicodeScalars.first, CharacterSet.letters.contains(first),
              name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_" }), name.count <= 64 else {
            throw ValidationError("plugin name \"\(name)\": expected letters, digits, '-' or '_', starting with a letter")
        }
        let isURL = forklift.map { $0.contains("://") || $0.hasPrefix("git@") } ?? false
        if let forklift, isURL, from == nil {
            throw ValidationError("--forklift \(forklift) is a URL: give the version to depend on with --from")
        }
        if let from, !isURL {
            throw ValidationError("--from \(from) goes with --forklift URL (a path dependency has no version)")
        }
    }

    func run() throws {
        let target = URL(fileURLWithPath: directory ?? name).standardizedFileURL.path
        let files = FileManager.default
        if let existing = try? files.contentsOfDirectory(atPath: target), !existing.isEmpty {
            throw ForkliftExit(message: "new-plugin: \(target) exists and is not empty; choose another --directory")
        }
        let (dependency, identity) = try forkliftDependency()
        let scaffold = PluginScaffold(name: name, directory: target, forkliftDependency: dependency, forkliftIdentity: identity)
        for (path, text) in scaffold.files {
            let full = target + "/" + path
            try files.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard files.createFile(atPath: full, contents: Data(text.utf8)) else {
                throw ForkliftExit(message: "new-plugin: cannot write \(full)")
            }
        }
        print("""
            created plugin \(scaffold.identifier) in \(target):
              \(scaffold.files.map(\.path).sorted().joined(separator: "\n  "))
            next:
              cd \(target) && swift build && swift test
              then add conf.d/\(scaffold.route.dropFirst()).toml's table to a pool (with swift build -c release) and run forklift reload
            """)
    }

    /// The `.package(...)` line for Forklift, and the identity SwiftPM gives it.
    private func forkliftDependency() throws -> (String, String) {
        if let forklift, let from { // a URL: validate() saw to it
            return (".package(url: \(Self.quoted(forklift)), from: \(Self.quoted(from)))", Self.identity(forklift))
        }
        let source = forklift.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? Self.sourceTree
        guard FileManager.default.fileExists(atPath: source + "/Package.swift") else {
            throw ForkliftExit(message: forklift == nil
                ? "new-plugin: the source tree this forklift was built from (\(source)) is not here; pass --forklift PATH (a Forklift checkout) or --forklift URL --from VERSION"
                : "new-plugin: --forklift \(source) has no Package.swift; expected a Forklift checkout")
        }
        return (".package(path: \(Self.quoted(source)))", Self.identity(source))
    }

    /// SwiftPM's identity of a package: the last part of its path or URL, without ".git".
    static func identity(_ location: String) -> String {
        var last = location.split(separator: "/").last.map(String.init) ?? location
        if last.hasSuffix(".git") { last.removeLast(4) }
        return last.lowercased()
    }

    /// The package root this binary was compiled from (Sources/forklift/ is two levels down).
    static var sourceTree: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
