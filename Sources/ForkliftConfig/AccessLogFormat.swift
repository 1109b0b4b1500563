/// PHP-FPM's `access.format`: `%`-tokens, some with an argument in braces (`%{mili}d`,
/// `%{REQUEST_URI}e`, `%{Content-Type}o`, `%{%H:%M}t`). Parsed once; rendered per request.
///
/// | token | what |
/// |---|---|
/// | `%R` `%u` | remote address, remote user |
/// | `%m` `%r` `%q` `%Q` | method, URI without the query, the query, "?" if there is one |
/// | `%s` `%l` | status, the request's content length |
/// | `%d` | duration: `%{seconds}d` (default), `%{milliseconds}d`/`%{mili}d`, `%{microseconds}d`/`%{micro}d` |
/// | `%C` | CPU used, in per cent of the duration |
/// | `%M` | the worker's peak memory: bytes, `%{kilo}M`, `%{mega}M` |
/// | `%t` `%T` | when the request came, when it ended (strftime in braces) |
/// | `%e` `%o` | a param (`%{NAME}e`), a response header (`%{Name}o`) |
/// | `%f` `%n` `%p` `%P` `%%` | plugin, pool, worker pid, host pid, a % |
public struct AccessLogFormat: Equatable, Sendable {
    public static let phpFPMDefault = "%R - %u %t \"%m %r\" %s"

    public enum Token: Equatable, Sendable {
        case text(String)
        case field(Character, argument: String?)
    }

    public struct Failure: Error { public let message: String }

    public static let fields: Set<Character> = ["C", "d", "e", "f", "l", "m", "M", "n", "o", "p", "P", "q", "Q", "r", "R", "s", "t", "T", "u"]

    public let tokens: [Token]

    public init(_ format: String) throws(Failure) {
        var tokens: [Token] = []
        var text = ""
        var characters = format.makeIterator()
        while let character = characters.next() {
            guard character == "%" else {
                text.append(character)
                continue
            }
            var argument: String?
            guard var next = characters.next() else { throw Failure(message: "the format ends with a lone %") }
            if next == "%" {
                text.append("%")
                continue
            }
            if next == "{" {
                var inside = ""
                while let c = characters.next(), c != "}" { inside.append(c) }
                argument = inside
                guard let letter = characters.next() else { throw Failure(message: "%{\(inside)} is followed by no token letter") }
                next = letter
            }
            guard Self.fields.contains(next) else {
                throw Failure(message: "unknown token %\(next); expected one of %\(Self.fields.sorted().map(String.init).joined(separator: " %"))")
            }
            if !text.isEmpty {
                tokens.append(.text(text))
                text = ""
            }
            if (next == "e" || next == "o") && (argument ?? "").isEmpty {
                throw Failure(message: "%\(next) needs a name in braces, e.g. %{\(next == "e" ? "REQUEST_URI" : "Content-Type")}\(next)")
            }
            if next == "d", let unit = argument, !["seconds", "milliseconds", "mili", "microseconds", "micro"].contains(unit) {
                throw Failure(message: "%{\(unit)}d: expected seconds, milliseconds, mili, microseconds or micro")
            }
            if next == "M", let unit = argument, !["bytes", "kilo", "kilobytes", "mega", "megabytes"].contains(unit) {
                throw Failure(message: "%{\(unit)}M: expected bytes, kilo, kilobytes, mega or megabytes")
            }
            tokens.append(.field(next, argument: argument))
        }
        if !text.isEmpty { tokens.append(.text(text)) }
        self.tokens = tokens
    }

    /// One line: each field from `value` (nil shows as "-").
    public func render(_ value: (Character, String?) -> String?) -> String {
        var line = ""
        for token in tokens {
            switch token {
            case .text(let text): line += text
            case .field(let letter, let argument): line += value(letter, argument) ?? "-"
            }
        }
        return line
    }
}
