/// How figures appear in log lines and command output: one decimal, a unit where it helps.
public enum Formatting {
    /// 12.34 → "12.3"
    public static func oneDecimal(_ value: Double) -> String {
        String(Double(Int((value * 10).rounded())) / 10)
    }

    /// Milliseconds between two instants, one decimal: "3.1".
    public static func milliseconds(from start: MonotonicInstant, to end: MonotonicInstant = .now()) -> String {
        oneDecimal(start.seconds(until: end) * 1000)
    }

    /// 0.25 → "0.3 s"
    public static func seconds(_ value: Double) -> String {
        oneDecimal(value) + " s"
    }

    /// 97_600_000 → "93.1 MiB"
    public static func mebibytes(_ bytes: Int) -> String {
        oneDecimal(Double(bytes) / 1_048_576) + " MiB"
    }
}
