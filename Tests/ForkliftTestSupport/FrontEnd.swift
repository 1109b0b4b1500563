import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A web server in front of Forklift, as in production: Debian's nginx, Apache httpd or
/// lighttpd, started by the test as its own process in a folder of its own (never the system
/// service, never its configuration), listening on free ports of 127.0.0.1 only, and stopped
/// by `stop()`. The test gives the site's configuration (`FrontEnd.example` reads the shipped
/// ones in docs/frontends); the front end wraps it in a minimal configuration of its own: pid
/// file, logs and temporary files in `directory`, modules loaded explicitly.
public final class FrontEnd: @unchecked Sendable {
    public enum Server: String, Sendable, CustomStringConvertible {
        case nginx, apache, lighttpd
        public var description: String { rawValue }

        /// The Debian package's executable.
        var executable: String {
            switch self {
            case .nginx: "nginx"
            case .apache: "apache2"
            case .lighttpd: "lighttpd"
            }
        }

        var package: String {
            switch self {
            case .nginx: "nginx-light"
            case .apache: "apache2"
            case .lighttpd: "lighttpd"
            }
        }
    }

    public let server: Server
    /// Where its configuration, pid file and logs are: `<parent>/<server>`.
    public let directory: String
    /// The ports it listens on (`port` is the first): picked free before each start.
    public private(set) var ports: [UInt16] = []
    public var port: UInt16 { ports[0] }
    private var process: Process?

    public var errorLogPath: String { directory + "/error.log" }
    public var errorLog: String { Self.read(errorLogPath) }
    /// What it printed (configuration errors before its error log is open).
    public var output: String { Self.read(directory + "/output.log") }

    /// Starts `server` in `<parent>/<server>` with `site(ports)` included, once `count` free
    /// ports are picked; returns when it listens on all of them. A port picked free may be
    /// taken by a parallel test before the server binds it: then it exits, and is started
    /// again on other ports. `defines` are Apache's `-D` names.
    public init(_ server: Server, in parent: String, ports count: Int = 1, defines: [String] = [],
                site: ([UInt16]) throws -> String) throws {
        self.server = server
        directory = parent + "/" + server.rawValue
        guard let executable = Command.find(server.executable) else {
            throw FastCGIError("\(server.executable) is needed (Debian's \(server.package); scripts/install-deps.sh --tests)")
        }
        try FileManager.default.createDirectory(atPath: directory + "/htdocs", withIntermediateDirectories: true)
        try prepare(parent: parent)
        for attempt in 1...5 {
            ports = []
            while ports.count < count {
                let port = try FreePort.pick()
                if !ports.contains(port) { ports.append(port) }
            }
            try site(ports).write(toFile: directory + "/site.conf", atomically: true, encoding: .utf8)
            try configuration.write(toFile: configurationPath, atomically: true, encoding: .utf8)
            if try start(executable, defines: defines) { return }
            stop()
            if attempt == 5 {
                throw FastCGIError("\(server) did not start on 127.0.0.1:\(ports); it printed:\n\(output)\nits error log:\n\(errorLog)")
            }
        }
    }

    /// Runs the server in the foreground; true once its pid file names it and every port
    /// accepts connections (each server writes its pid file after binding its ports), false
    /// if it exited first.
    private func start(_ executable: String, defines: [String]) throws -> Bool {
        try? FileManager.default.removeItem(atPath: pidFilePath)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments + defines.flatMap { ["-D", $0] }
        // A file, not a pipe: a process spawned meanwhile by a parallel test could inherit a
        // pipe's write end.
        let outputPath = directory + "/output.log"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = FileHandle(forWritingAtPath: outputPath)
        process.standardOutput = output
        process.standardError = output
        try Self.withSignalsUnblocked { try process.run() }
        try? output?.close()
        self.process = process
        let pid = process.processIdentifier
        let listening = ForkliftServer.eventually(timeout: 15) {
            !process.isRunning
                || (Self.read(pidFilePath).trimmingCharacters(in: .whitespacesAndNewlines) == "\(pid)"
                    && ports.allSatisfy { HTTPConnection.accepts($0) })
        }
        return listening && process.isRunning
    }

    /// Stops the server and whatever it forked (Apache's children): TERM, KILL after 10 s.
    public func stop() {
        guard let process else { return }
        self.process = nil
        // Collected first: once the server is gone, its children are no longer below it.
        let children = ProcessTable.descendants(of: process.processIdentifier).keys
        // Foundation's Process sees an exit only when every process holding its end of a
        // socket pair (inherited by the server's children too) has closed it.
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            if !ForkliftServer.eventually(timeout: 10, { !process.isRunning }) {
                kill(process.processIdentifier, SIGKILL)
                for child in children { kill(child, SIGKILL) }
            }
        }
        process.waitUntilExit()
        for child in children where ProcessTable.isAlive(child) { kill(child, SIGKILL) }
    }

    /// Runs `body` (a spawn) with no signal blocked in this thread. posix_spawn hands the
    /// spawning thread's mask on (Foundation's Process does not set one), and tests run on
    /// libdispatch threads, which block most signals: nginx and Apache never unblock them,
    /// and a TERM would wait for ever.
    static func withSignalsUnblocked<T>(_ body: () throws -> T) rethrows -> T {
        var none = sigset_t()
        var saved = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        return try body()
    }

    deinit { stop() }

    /// The server's error log and Forklift's, for a failed expectation.
    public func diagnostics(_ forklift: ForkliftServer, lines: Int = 60) -> String {
        """
        \(server) error log:
        \(errorLog.components(separatedBy: "\n").suffix(lines).joined(separator: "\n"))
        forklift log (last \(lines) lines):
        \(forklift.log.components(separatedBy: "\n").suffix(lines).joined(separator: "\n"))
        """
    }

    /// docs/frontends/`name`, the configuration shipped for users, with each of `replacing`'s
    /// keys (its example socket, ports) replaced by the test's own. Every key must be there:
    /// a test must run the example as it is documented.
    public static func example(_ name: String, replacing: KeyValuePairs<String, String>) throws -> String {
        let path = ForkliftServer.packageRoot + "/docs/frontends/" + name
        var text = try String(contentsOfFile: path, encoding: .utf8)
        for (example, actual) in replacing {
            guard text.contains(example) else {
                throw FastCGIError("docs/frontends/\(name) no longer contains \"\(example)\": the test replaces it with its own value")
            }
            text = text.replacingOccurrences(of: example, with: actual)
        }
        return text
    }

    static func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
}

extension FrontEnd {
    var configurationPath: String { directory + "/" + server.rawValue + ".conf" }
    var pidFilePath: String { directory + "/" + server.rawValue + ".pid" }

    var arguments: [String] {
        switch server {
        case .nginx: ["-p", directory, "-c", configurationPath, "-e", errorLogPath]
        case .apache: ["-f", configurationPath, "-DFOREGROUND"]
        case .lighttpd: ["-D", "-f", configurationPath]
        }
    }

    func prepare(parent: String) throws {
        switch server {
        case .nginx:
            // The examples `include fastcgi_params`, which nginx looks for next to its
            // configuration file: Debian's own.
            try? FileManager.default.removeItem(atPath: directory + "/fastcgi_params")
            try FileManager.default.createSymbolicLink(atPath: directory + "/fastcgi_params", withDestinationPath: "/etc/nginx/fastcgi_params")
        case .apache:
            // Started as root, Apache serves as www-data (it refuses to serve as root), which
            // must reach Forklift's socket in `parent` (mkdtemp makes it 0700).
            if geteuid() == 0 { chmod(parent, 0o711) }
        case .lighttpd:
            break
        }
    }

    /// The server's own configuration around the site's: everything in `directory`.
    var configuration: String {
        switch server {
        case .nginx:
            """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(pidFilePath);
            error_log \(errorLogPath) info;
            events { worker_connections 256; }
            http {
                access_log off;
                client_body_temp_path \(directory)/body;
                fastcgi_temp_path \(directory)/fastcgi;
                proxy_temp_path \(directory)/proxy;
                # The clients' own connections to nginx may stay open for a whole test.
                keepalive_timeout 300s;
                keepalive_requests 100000;
                include \(directory)/site.conf;
            }
            """
        case .apache:
            """
            ServerRoot "\(directory)"
            DefaultRuntimeDir "\(directory)"
            PidFile "\(pidFilePath)"
            ErrorLog "\(errorLogPath)"
            LogLevel info
            ServerName 127.0.0.1
            DocumentRoot "\(directory)/htdocs"
            \(ports.map { "Listen 127.0.0.1:\($0)" }.joined(separator: "\n"))
            LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
            LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
            LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
            LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
            # One child process with a few threads.
            StartServers 1
            ServerLimit 1
            ThreadsPerChild 8
            MaxRequestWorkers 8
            MinSpareThreads 1
            MaxSpareThreads 16
            \(geteuid() == 0 ? "User www-data\nGroup www-data" : "")
            Include "\(directory)/site.conf"
            """
        case .lighttpd:
            """
            server.document-root = "\(directory)/htdocs"
            server.bind = "127.0.0.1"
            server.port = \(ports[0])
            \(ports.dropFirst().map { "$SERVER[\"socket\"] == \"127.0.0.1:\($0)\" { }" }.joined(separator: "\n"))
            server.pid-file = "\(pidFilePath)"
            server.errorlog = "\(errorLogPath)"
            server.upload-dirs = ( "\(directory)" )
            include "\(directory)/site.conf"
            """
        }
    }
}
