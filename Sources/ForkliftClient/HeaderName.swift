/// HTTP header names (RFC 9110 tokens) and values a response may carry: the worker refuses
/// anything else from a plugin, and ForkliftTesting does the same.
public enum HeaderName {
    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            default:
                "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }

    /// Bytes, not Characters: "\r\n" is one Character and would slip past a check for "\r".
    public static func isValidValue(_ value: String) -> Bool {
        !value.utf8.contains { $0 == 10 || $0 == 13 || $0 == 0 }
    }
}
