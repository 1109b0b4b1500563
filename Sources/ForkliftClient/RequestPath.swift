/// The path a request is routed by, from the FastCGI params, first present of (here, beside
/// the client, so that the workers, `forklift request` and ForkliftTesting agree):
///
/// 1. `DOCUMENT_URI` — nginx's normalised path, without the query string;
/// 2. `SCRIPT_NAME` + `PATH_INFO` — the CGI way (Apache, lighttpd, cgi-fcgi);
/// 3. `REQUEST_URI` without its query string — the raw request line, as a last resort.
///
/// An empty or missing result routes as "/".
public enum RequestPath {
    public static func resolve(_ param: (String) -> String?) -> String {
        if let uri = param("DOCUMENT_URI"), !uri.isEmpty { return uri }
        let script = param("SCRIPT_NAME") ?? ""
        let info = param("PATH_INFO") ?? ""
        if !(script + info).isEmpty { return script + info }
        if let uri = param("REQUEST_URI"), !uri.isEmpty {
            return String(uri.prefix { $0 != "?" })
        }
        return "/"
    }
}
