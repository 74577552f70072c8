import Foundation

/// A single `Range: bytes=…` request resolved against a blob's size.
struct ByteRange: Equatable {
    var start: Int64
    /// Inclusive.
    var end: Int64

    var length: Int64 { end - start + 1 }

    enum Parsed: Equatable {
        /// No usable Range header: serve the whole blob (RFC 9110 lets a server ignore what it does not support).
        case whole
        case partial(ByteRange)
        case unsatisfiable
    }

    static func parse(_ header: String?, size: Int64) -> Parsed {
        guard let header, header.hasPrefix("bytes=") else { return .whole }
        let spec = header.dropFirst("bytes=".count).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash]
        let last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int64(last), suffix > 0 else { return last.isEmpty ? .whole : .unsatisfiable }
            guard size > 0 else { return .unsatisfiable }
            return .partial(ByteRange(start: max(0, size - suffix), end: size - 1))
        }
        guard let start = Int64(first), start >= 0 else { return .whole }
        guard start < size else { return .unsatisfiable }
        if last.isEmpty { return .partial(ByteRange(start: start, end: size - 1)) }
        guard let end = Int64(last), end >= start else { return .whole }
        return .partial(ByteRange(start: start, end: min(end, size - 1)))
    }
}
