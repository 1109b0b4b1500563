import Foundation
import ForkliftTestSupport
import Testing

/// Debian's nginx-light in front of Forklift, as in production.
@Suite struct NginxTests {
    @Test func helloThroughNginxAndCurl() throws {
        let nginx = try #require(Command.find("nginx"), "nginx (Debian's nginx-light) is needed")
        let curl = try #require(Command.find("curl"), "curl is needed")
        let server = try ForkliftServer(config: poolConfig(listen: "{dir}/www.sock"))
        defer { server.shutdown() }

        let port = try FreePort.pick()
        let dir = server.directory
        let conf = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(dir)/nginx.pid;
            error_log \(dir)/nginx-error.log;
            events { worker_connections 64; }
            http {
                access_log off;
                client_body_temp_path \(dir)/nginx-body;
                fastcgi_temp_path \(dir)/nginx-fastcgi;
                proxy_temp_path \(dir)/nginx-proxy;
                server {
                    listen 127.0.0.1:\(port);
                    location / {
                        include /etc/nginx/fastcgi_params;
                        fastcgi_pass unix:\(dir)/www.sock;
                    }
                }
            }
            """
        try conf.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: nginx)
        process.arguments = ["-p", dir, "-c", dir + "/nginx.conf"]
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        defer {
            // KILL, not TERM: Foundation's Process starts children with most signals blocked,
            // and nginx does not unblock them, so a TERM would wait forever.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        var result = Command.Result(status: -1, output: "")
        _ = ForkliftServer.eventually(timeout: 10) {
            result = (try? Command.run(curl, ["-sS", "-i", "http://127.0.0.1:\(port)/hello"])) ?? result
            return result.status == 0
        }
        #expect(result.output.hasPrefix("HTTP/1.1 200 OK"), "\(result.output)")
        #expect(result.output.contains("Content-Type: text/plain; charset=utf-8"))
        #expect(result.output.hasSuffix("Hello, world!\n") == true)

        let missing = try Command.run(curl, ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/missing"])
        #expect(missing.output == "404")
    }
}
