/// Chooses the plugin for a request: the one whose route is the longest prefix of the path.
///
/// A route matches on path-segment boundaries: `/hello` serves `/hello` and `/hello/x` but
/// not `/helloworld`; a route that ends in `/` (including `/` itself) matches any path that
/// starts with it.
public struct Router: Sendable {
    private let routes: [(prefix: String, target: Int)]

    /// `routes[i]` is the route of target `i`.
    public init(routes: [String]) {
        // Longest first, so the first match is the most specific one.
        self.routes = routes.enumerated()
            .map { (prefix: $0.element, target: $0.offset) }
            .sorted { $0.prefix.utf8.count > $1.prefix.utf8.count }
    }

    /// The index of the matching route, or nil when none matches.
    public func match(path: String) -> Int? {
        routes.first { Self.matches(prefix: $0.prefix, path: path) }?.target
    }

    static func matches(prefix: String, path: String) -> Bool {
        let p = prefix.utf8, s = path.utf8
        guard s.starts(with: p) else { return false }
        if p.count == s.count || p.last == UInt8(ascii: "/") { return true }
        return s[s.index(s.startIndex, offsetBy: p.count)] == UInt8(ascii: "/")
    }
}
