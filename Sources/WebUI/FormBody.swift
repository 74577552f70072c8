import Foundation

/// The fields of an HTML form as the browser sends them (`application/x-www-form-urlencoded`), or of a query
/// string: `+` is a space, `%XX` a byte, and a field given twice keeps its first value.
public struct FormBody: Sendable, Equatable {
    public private(set) var fields: [String: String] = [:]

    public init(_ encoded: String) {
        for pair in encoded.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            guard !name.isEmpty, fields[name] == nil else { continue }
            fields[name] = parts.count > 1 ? Self.decode(parts[1]) : ""
        }
    }

    /// The field, trimmed; nil when absent or empty.
    public subscript(_ name: String) -> String? {
        guard let value = fields[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else {
            return nil
        }
        return value
    }

    private static func decode(_ text: Substring) -> String {
        let plus = text.replacingOccurrences(of: "+", with: " ")
        return plus.removingPercentEncoding ?? plus
    }
}
