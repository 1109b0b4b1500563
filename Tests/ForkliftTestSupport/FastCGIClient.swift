// The tests talk FastCGI through the same client `forklift request` uses.
@_exported import ForkliftClient

/// A connection the client keeps open across requests (FCGI_KEEP_CONN), as nginx's upstream
/// keepalive does.
public typealias KeptConnection = FastCGIConnection
