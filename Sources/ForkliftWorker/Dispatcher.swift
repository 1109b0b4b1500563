import CFastCGI
import ForkliftLogging
import ForkliftSystem
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
        let started = MonotonicInstant.now()
        defer {
            // The message is built only when debug logging is on: nothing extra per request otherwise.
            ForkliftLogging.logger.debug("\(request.param("REQUEST_METHOD") ?? "-") \(path) \(response.status) \(Formatting.milliseconds(from: started)) ms")
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
