/// Durations on the command line and in the API: `90s`, `30m`, `2h`, `7d`, `1w`, or plain seconds.
public enum DurationText {
    public static func seconds(_ text: String) throws(RegistryError) -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var number = Substring(text)
        var unit: Int64 = 1
        if let last = text.last, let multiplier = units[last] {
            number = number.dropLast()
            unit = multiplier
        }
        guard !number.isEmpty, number.utf8.count <= 12, number.allSatisfy(\.isASCII), let value = Int64(number),
            value >= 0
        else {
            throw RegistryError(
                .invalidRequest,
                "invalid duration '\(text.prefix(40))': use a whole number with s, m, h, d or w (90s, 30m, 2h, 7d)")
        }
        return value * unit
    }

    /// The same text as a `Duration` that must be longer than zero (a TTL, a timeout).
    public static func positive(_ text: String) throws(RegistryError) -> Duration {
        let value = try seconds(text)
        guard value > 0 else {
            throw RegistryError(.invalidRequest, "invalid duration '\(text.prefix(40))': it must be longer than zero")
        }
        return .seconds(value)
    }
}
