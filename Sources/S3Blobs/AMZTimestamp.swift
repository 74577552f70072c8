import Foundation

/// The signing instant in the two forms SigV4 uses, worked out from the epoch in UTC: a DateFormatter would follow
/// the process's locale and calendar unless carefully configured, and a signature must not.
struct AMZTimestamp: Sendable, Equatable {
    /// `yyyyMMdd'T'HHmmss'Z'`: the `x-amz-date` header and `X-Amz-Date` parameter.
    let dateTime: String
    /// `yyyyMMdd`: the date in the credential scope.
    let day: String

    init(_ date: Date) {
        // Whole seconds, rounded down: the format has no fractions.
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            days -= 1
            secondOfDay += 86_400
        }
        let (year, month, dayOfMonth) = Self.civilDate(daysSinceEpoch: days)
        day = Self.padded(year, 4) + Self.padded(month, 2) + Self.padded(dayOfMonth, 2)
        dateTime =
            day + "T" + Self.padded(secondOfDay / 3600, 2) + Self.padded(secondOfDay / 60 % 60, 2)
            + Self.padded(secondOfDay % 60, 2) + "Z"
    }

    /// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
    private static func civilDate(daysSinceEpoch: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = daysSinceEpoch + 719_468  // days since 0000-03-01, so leap days fall at the end of a year
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let marchBasedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * marchBasedMonth + 2) / 5 + 1
        let month = marchBasedMonth < 10 ? marchBasedMonth + 3 : marchBasedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func padded(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
