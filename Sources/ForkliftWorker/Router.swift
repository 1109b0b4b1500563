import Glibc

/// Chooses the plugin for a request: the one whose route is the longest prefix of the path.
///
/// A route matches on path-segment boundaries: `/hello` serves `/hello` and `/hello/x` but
/// not `/helloworld`; a route that ends in `/` (including `/` itself) matches any path that
/// starts with it.
public struct Router: Sendable {
    private let routes: [(prefix: [UInt8], target: Int)]

    /// `routes[i]` is the route of target `i`.
    public init(routes: [String]) {
        // Longest first, so the first match is the most specific one.
        self.routes = routes.enumerated()
            .map { (prefix: Array($0.element.utf8), target: $0.offset) }
            .sorted { $0.prefix.count > $1.prefix.count }
    }

    /// The index of the matching route, or nil when none matches.
    public func match(path: String) -> Int? {
        var path = path
        return path.withUTF8 { match(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The same on the path's bytes (the worker's, straight from libfcgi's params).
    public func match(bytes path: UnsafeRawBufferPointer) -> Int? {
        for route in routes where Self.matches(prefix: route.prefix, path: path) { return route.target }
        return nil
    }

    static func matches(prefix: [UInt8], path: UnsafeRawBufferPointer) -> Bool {
        guard path.count >= prefix.count else { return false }
        guard prefix.isEmpty || prefix.withUnsafeBytes({ memcmp($0.baseAddress!, path.baseAddress!, prefix.count) == 0 }) else { return false }
        if prefix.count == path.count || prefix.last == UInt8(ascii: "/") { return true }
        return path[prefix.count] == UInt8(ascii: "/")
    }
}
