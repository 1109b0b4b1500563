import CFastCGI
import ForkliftLogging
import Glibc
import Logging

/// Routes one request to its plugin and turns the plugin's failure into a 500.
struct Dispatcher {
    let plugins: [PluginInstance]
    let router: Router
    let poolName: String

    init(plugins: [PluginInstance], poolName: String) {
        self.plugins = plugins
        self.poolName = poolName
        router = Router(routes: plugins.map(\.settings.route))
    }

    func serve(_ fcgiRequest: UnsafeMutablePointer<FCGX_Request>) {
        let request = RequestBridge(fcgiRequest)
        let response = ResponseBridge(out: fcgiRequest.pointee.out)
        let path = request.routedPath
        let started = MonotonicClock.now()
        defer {
            let method = request.param("REQUEST_METHOD") ?? "-"
            ForkliftLogging.logger.debug("\(method) \(path) \(response.status) \(MonotonicClock.milliseconds(since: started)) ms")
        }

        guard let index = router.match(path: path) else {
            response.respond(status: 404, body: "404 Not Found: no plugin of pool \(poolName) is routed for \(path)\n")
            return
        }
        let plugin = plugins[index]
        if let failure = plugin.handle(request.opaque, response.opaque) {
            ForkliftLogging.logger.error("plugin \(plugin.settings.name) failed on \(path): \(failure)")
            if response.headersSent {
                // Part of the response is already on the wire: the status cannot change now.
                ForkliftLogging.logger.error("the response to \(path) was already started; it ends here, truncated")
            } else {
                response.respond(status: 500, body: "500 Internal Server Error\n")
            }
            return
        }
        response.sendHeadersIfNeeded()
    }
}

enum MonotonicClock {
    static func now() -> timespec {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return spec
    }

    static func milliseconds(since start: timespec) -> String {
        let end = now()
        let ms = Double(end.tv_sec - start.tv_sec) * 1000 + Double(end.tv_nsec - start.tv_nsec) / 1e6
        return String(Int((ms * 10).rounded()) / 10) + "." + String(Int((ms * 10).rounded()) % 10)
    }
}
