import Foundation

/// Human-readable byte counts in binary units.
public enum ByteCount {
    public static func format(_ bytes: Int64, digits: Int = 1) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.\(digits)f %@", value, units[unit])
    }

    /// `bytes` with the digits it takes not to read the same as `other` (a need against a budget):
    /// "1.0 GiB" beside a 1.0 GiB budget becomes "1.004 GiB", or the exact byte count.
    public static func format(_ bytes: Int64, apartFrom other: Int64) -> String {
        guard bytes != other else { return format(bytes) }
        for digits in 1...4 where format(bytes, digits: digits) != format(other, digits: digits) {
            return format(bytes, digits: digits)
        }
        return "\(bytes) bytes"
    }
}

extension ByteCount {
    /// `24GiB`, `80G` (binary), `16GB` (decimal), `512MiB`, `1.5TiB`, or a plain number of bytes.
    public static func parse(_ text: String) throws(RegistryError) -> Int64 {
        let units: [(String, Double)] = [
            ("TiB", 0x1p40), ("GiB", 0x1p30), ("MiB", 0x1p20), ("KiB", 0x1p10), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6),
            ("KB", 1e3), ("T", 0x1p40), ("G", 0x1p30), ("M", 0x1p20), ("K", 0x1p10), ("B", 1),
        ]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let unit = units.first { trimmed.uppercased().hasSuffix($0.0.uppercased()) }
        let number = unit.map { String(trimmed.dropLast($0.0.count)).trimmingCharacters(in: .whitespaces) } ?? trimmed
        guard let value = Double(number), value.isFinite, value > 0, value * (unit?.1 ?? 1) < 0x1p62 else {
            throw RegistryError(
                .invalidRequest, "invalid size '\(text)': expected a number and a unit, such as 24GiB, 80G or 16GB")
        }
        return Int64(value * (unit?.1 ?? 1))
    }
}
