import Foundation

/// Times are stored and sent as ISO 8601 UTC with milliseconds (`2026-11-25T06:21:52.123Z`), which sort
/// correctly as text.
public enum Timestamp {
    public static func now() -> String { format(Date()) }

    public static func format(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    /// A time `format` wrote.
    public static func parse(_ text: String) throws(RegistryError) -> Date {
        guard let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) else {
            throw RegistryError(.storageFailure, "the stored time '\(text.prefix(40))' is not an ISO 8601 time")
        }
        return date
    }
}
