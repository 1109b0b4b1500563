/// The files of a new plugin package, as `forklift new-plugin` writes them.
struct PluginScaffold {
    /// "my-greeter" → "MyGreeter": the Swift type, target and library product.
    let identifier: String
    /// "my-greeter": the plugin's name in logs and in `[pool.POOL.plugin.NAME]`.
    let pluginName: String
    let route: String
    let files: [(path: String, text: String)]

    /// `forkliftIdentity`: how SwiftPM names the dependency, its path's or URL's last part.
    init(name: String, directory: String, forkliftDependency: String, forkliftIdentity: String) {
        let words = name.split(whereSeparator: { $0 == "-" || $0 == "_" })
        identifier = words.map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        pluginName = name.lowercased()
        route = "/" + pluginName
        let type = identifier
        files = [
            ("Package.swift", """
                // swift-tools-version:6.0
                // A Forklift plugin: a dynamic library the server dlopen()s (lib\(type).so).
                import PackageDescription

                let package = Package(
                    name: "\(type)",
                    products: [
                        .library(name: "\(type)", type: .dynamic, targets: ["\(type)"]),
                    ],
                    dependencies: [
                        \(forkliftDependency),
                    ],
                    targets: [
                        .target(name: "\(type)", dependencies: [.product(name: "ForkliftPlugin", package: "\(forkliftIdentity)")]),
                        .testTarget(name: "\(type)Tests", dependencies: ["\(type)", .product(name: "ForkliftTesting", package: "\(forkliftIdentity)")]),
                    ]
                )

                """),
            ("Sources/\(type)/\(type).swift", """
                import ForkliftPlugin

                /// Answers every request below its route with a greeting, the method and the path.
                ///
                /// Settings: `greeting` (default "Hello").
                final class \(type): ForkliftHandler {
                    static let name = "\(pluginName)"
                    static let version = "0.1.0"

                    let greeting: String

                    /// The preload hook: runs once in the pool's host, before the workers are forked;
                    /// what it loads is shared by every worker. Throwing stops the pool with your message.
                    init(context: PluginContext) throws {
                        greeting = context.settings["greeting"] ?? "Hello"
                    }

                    /// Per request, in a worker. A thrown error becomes a 500, and its message is logged.
                    func handle(_ request: Request, _ response: Response) throws {
                        try response.addHeader("Content-Type", "text/plain; charset=utf-8")
                        try response.write("\\(greeting) from \(pluginName): \\(request.method) \\(request.path)\\n")
                    }
                }

                @_cdecl("forklift_plugin_entry") public func forkliftPluginEntry() -> UnsafeRawPointer { export(\(type).self) }

                """),
            ("Tests/\(type)Tests/\(type)Tests.swift", """
                @testable import \(type)
                import ForkliftTesting
                import Testing

                @Test func answersWithTheGreetingMethodAndPath() throws {
                    let plugin = try PluginUnderTest(\(type).self, settings: ["greeting": "Hi"], route: "\(route)")
                    let response = plugin.get("\(route)/x?y=1")
                    #expect(response.status == 200)
                    #expect(response.bodyText == "Hi from \(pluginName): GET \(route)/x\\n")
                }

                /// The shared object `swift build` made, loaded as the server will load it.
                @Test func theBuiltLibraryLoadsThroughThePluginABI() throws {
                    let plugin = try PluginUnderTest(library: PluginUnderTest.built("\(type)"), route: "\(route)")
                    #expect(plugin.name == "\(pluginName)" && plugin.version == "0.1.0")
                    #expect(plugin.post("\(route)", body: "ignored").bodyText == "Hello from \(pluginName): POST \(route)\\n")
                }

                """),
            ("conf.d/\(pluginName).toml", """
                # Serve \(pluginName) at \(route) in pool www: put this in Forklift's conf.d (the pool's own
                # table, [pool.www], is there already), build with `swift build -c release`, then
                # `forklift check` and `forklift reload`.
                [pool.www.plugin.\(pluginName)]
                path = "\(directory)/.build/release/lib\(type).so"
                route = "\(route)"
                settings = { greeting = "Hello" }

                """),
            (".gitignore", """
                .build/
                .swiftpm/
                Package.resolved

                """),
            ("README.md", """
                # \(type)

                A Forklift plugin: `\(route)` answers with a greeting.

                ```sh
                swift build && swift test          # the test loads the handler and its .so, no server needed
                swift build -c release             # .build/release/lib\(type).so
                ```

                Then copy `conf.d/\(pluginName).toml` into Forklift's `conf.d` and run `forklift check` and
                `forklift reload`. Build the plugin with the same Swift toolchain as `forklift`.

                """),
        ]
    }
}
