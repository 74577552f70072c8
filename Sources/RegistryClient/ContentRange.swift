/// The `Content-Range` of a 206 answer, read the same way on every download path.
enum ContentRange {
    /// The first byte `value` (`bytes 10-19/30`) says the body holds; nil when it names none.
    static func start(of value: String?) -> Int64? {
        // Range units are case-insensitive (RFC 9110).
        guard let value, value.lowercased().hasPrefix("bytes "), let dash = value.firstIndex(of: "-") else {
            return nil
        }
        return Int64(value[value.index(value.startIndex, offsetBy: 6)..<dash])
    }
}
