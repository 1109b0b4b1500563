/// A configuration problem: the file, the key (dotted, e.g. `pool.www.max_children`) and
/// what was expected.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible, Sendable {
    public let file: String
    public let key: String?
    public let message: String

    public init(file: String, key: String?, _ message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String {
        if let key { return "\(file): \(key): \(message)" }
        return "\(file): \(message)"
    }
}
