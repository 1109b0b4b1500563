// swift-tools-version:6.0
//
// Forklift: a pre-forking FastCGI application server for Swift plugins.
//
// The import graph, bottom to top:
//   CFastCGI, CForkliftABI, CForkliftSys        C: libfcgi, the plugin ABI header, signal/fork/proctitle shims
//   ForkliftSystem                              Swift wrappers over the syscalls (one place each)
//   ForkliftJSON                                JSON string literals, by hand (no Foundation)
//   ForkliftConfig, ForkliftLogging             configuration values (users and groups looked up); log line format
//   ForkliftIPC                                 what master and host tell each other (launch, reports, the scoreboard)
//   ForkliftStatus                              the status page's formats (PHP-FPM's text, JSON, OpenMetrics, HTML)
//   ForkliftClient                              a FastCGI client (forklift request, the tests); depends on nothing
//   ForkliftWorker                              libfcgi accept loop, routing, the ABI's request/response
//   ForkliftHost                                dlopen + preload, forks and supervises workers
//   ForkliftMaster                              plugin-free supervisor of hosts; receives the host body
//   forklift                                    the CLI wiring it together
//   ForkliftPlugin                              the SDK plugins link; depends on CForkliftABI only
//   ForkliftTesting                             plugins' tests: the SDK's hooks driven by an in-memory host
import PackageDescription

let package = Package(
    name: "Forklift",
    products: [
        .executable(name: "forklift", targets: ["forklift"]),
        .library(name: "ForkliftPlugin", targets: ["ForkliftPlugin"]),
        // For plugins' own tests: load a handler (its type, or its built .so) without a server.
        .library(name: "ForkliftTesting", targets: ["ForkliftTesting"]),
        // Example plugins: each is a shared object the host dlopen()s.
        .library(name: "Hello", type: .dynamic, targets: ["Hello"]),
        .library(name: "Echo", type: .dynamic, targets: ["Echo"]),
        .library(name: "Dictionary", type: .dynamic, targets: ["Dictionary"]),
        // Fixtures the integration tests load: not examples, not installed.
        .library(name: "ForkliftTestBehaviors", type: .dynamic, targets: ["ForkliftTestBehaviors"]),
        .library(name: "ForkliftTestNotAPlugin", type: .dynamic, targets: ["ForkliftTestNotAPlugin"]),
        .library(name: "ForkliftTestVersionOne", type: .dynamic, targets: ["ForkliftTestVersionOne"]),
        .library(name: "ForkliftTestVersionTwo", type: .dynamic, targets: ["ForkliftTestVersionTwo"]),
        .library(name: "ForkliftBenchBallast", type: .dynamic, targets: ["ForkliftBenchBallast"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
        // `swift package generate-documentation --target ForkliftPlugin`: a command plugin,
        // built only when that command runs; no target depends on it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: C at the bottom
        .systemLibrary(
            name: "CFastCGI",
            path: "Sources/CFastCGI",
            pkgConfig: "fcgi",
            providers: [.apt(["libfcgi-dev"])]
        ),
        .target(name: "CForkliftABI", path: "Sources/CForkliftABI"),
        .target(name: "CForkliftSys", path: "Sources/CForkliftSys"),

        // MARK: the server
        .target(name: "ForkliftSystem", dependencies: ["CForkliftSys"]),
        .target(name: "ForkliftIPC", dependencies: ["ForkliftSystem", "ForkliftConfig"]),
        .target(name: "ForkliftJSON"),
        .target(name: "ForkliftConfig", dependencies: ["ForkliftSystem", "ForkliftJSON", .product(name: "TOMLKit", package: "TOMLKit")]),
        .target(
            name: "ForkliftLogging",
            dependencies: ["ForkliftSystem", "ForkliftConfig", "ForkliftJSON", .product(name: "Logging", package: "swift-log")]
        ),
        .target(name: "ForkliftStatus", dependencies: ["ForkliftSystem", "ForkliftIPC", "ForkliftJSON"]),
        .target(name: "ForkliftClient"),
        .target(
            name: "ForkliftWorker",
            dependencies: ["CFastCGI", "CForkliftABI", "CForkliftSys", "ForkliftSystem", "ForkliftConfig", "ForkliftLogging", "ForkliftIPC", "ForkliftStatus", "ForkliftClient", "ForkliftJSON"]
        ),
        .target(
            name: "ForkliftHost",
            dependencies: ["CForkliftABI", "ForkliftSystem", "ForkliftConfig", "ForkliftLogging", "ForkliftIPC", "ForkliftWorker"]
        ),
        .target(
            name: "ForkliftMaster",
            dependencies: ["ForkliftSystem", "ForkliftConfig", "ForkliftLogging", "ForkliftIPC", "ForkliftStatus", "ForkliftJSON"]
        ),
        .executableTarget(
            name: "forklift",
            dependencies: [
                "ForkliftMaster", "ForkliftHost", "ForkliftConfig", "ForkliftLogging", "ForkliftSystem", "ForkliftClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: the SDK and the example plugins
        .target(name: "ForkliftPlugin", dependencies: ["CForkliftABI"]),
        .target(name: "ForkliftTesting", dependencies: ["ForkliftPlugin", "CForkliftABI", "ForkliftClient", "ForkliftJSON"]),
        .target(name: "Hello", dependencies: ["ForkliftPlugin"], path: "Plugins/Hello"),
        .target(name: "Echo", dependencies: ["ForkliftPlugin"], path: "Plugins/Echo"),
        .target(name: "Dictionary", dependencies: ["ForkliftPlugin"], path: "Plugins/Dictionary"),

        // MARK: tests
        .target(name: "ForkliftTestBehaviors", dependencies: ["ForkliftPlugin"], path: "Tests/Fixtures/Behaviors"),
        .target(name: "ForkliftTestNotAPlugin", path: "Tests/Fixtures/NotAPlugin"),
        .target(name: "ForkliftTestVersionOne", dependencies: ["ForkliftPlugin", "ForkliftTestKeyedData"], path: "Tests/Fixtures/VersionOne"),
        .target(name: "ForkliftTestVersionTwo", dependencies: ["ForkliftPlugin", "ForkliftTestKeyedData"], path: "Tests/Fixtures/VersionTwo"),
        .target(name: "ForkliftTestKeyedData", dependencies: ["ForkliftPlugin"], path: "Tests/Fixtures/KeyedData"),
        .target(name: "ForkliftBenchBallast", dependencies: ["ForkliftPlugin"], path: "Tests/Fixtures/Ballast"),
        .executableTarget(name: "forklift-test-without-ptrace", path: "Tests/Fixtures/WithoutPtrace"),
        .target(name: "ForkliftTestSupport", dependencies: ["ForkliftSystem", "ForkliftClient"], path: "Tests/ForkliftTestSupport"),
        .testTarget(name: "ForkliftConfigTests", dependencies: ["ForkliftConfig", "ForkliftSystem"]),
        .testTarget(name: "ForkliftWorkerTests", dependencies: ["ForkliftWorker", "ForkliftClient", "ForkliftSystem", "ForkliftTestSupport"]),
        // The example plugins' own tests, through ForkliftTesting: Echo in-process (one plugin
        // type per test binary: each exports the entry symbol), all three through their .so.
        .testTarget(name: "ExamplePluginTests", dependencies: ["ForkliftTesting", "ForkliftPlugin", "Echo"]),
        .testTarget(name: "ForkliftTestingTests", dependencies: ["ForkliftTesting"]),
        .testTarget(name: "ForkliftPluginTests", dependencies: ["ForkliftPlugin"]),
        .testTarget(name: "ForkliftIPCTests", dependencies: ["ForkliftIPC", "ForkliftSystem", "ForkliftStatus", "CForkliftSys"]),
        .testTarget(name: "ForkliftHostTests", dependencies: ["ForkliftHost", "ForkliftIPC", "ForkliftConfig", "ForkliftSystem", "ForkliftWorker", "CForkliftABI", "CForkliftSys"]),
        .testTarget(name: "ForkliftMasterTests", dependencies: ["ForkliftMaster", "ForkliftIPC", "ForkliftConfig", "ForkliftSystem"]),
        .testTarget(name: "ForkliftIntegrationTests", dependencies: ["ForkliftTestSupport", "ForkliftSystem"]),
    ]
)
