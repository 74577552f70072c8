import Foundation

/// A model card's metadata: the YAML block between the `---` lines that open a variant's `README.md`, which the
/// Hub shows as `cardData`. Read as a subset of YAML, enough for model cards: `key: value` scalars (strings,
/// quoted or not, integers, decimals, booleans, null), lists of `- item` lines or `[a, b]`, maps and lists of
/// maps nested by indentation. A line it cannot read is left out, never guessed at.
enum ModelCard {
    /// The card's metadata, or nil when the text opens with no metadata block.
    static func metadata(_ text: String) -> CardValue? {
        // "\r\n" is one Character, a newline like "\n".
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)[...]
        guard lines.first?.trimmingCharacters(in: .whitespaces) == "---" else { return nil }
        lines.removeFirst()
        guard let end = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "---" }) else {
            return nil
        }
        var block = lines[..<end].compactMap(CardLine.init)[...]
        return .map(parseMap(&block, indent: block.first?.indent ?? 0))
    }

    private static func parseMap(_ lines: inout ArraySlice<CardLine>, indent: Int) -> [String: CardValue] {
        var map: [String: CardValue] = [:]
        while let line = lines.first, line.indent >= indent {
            guard line.indent == indent, !line.isListItem, let (key, rest) = line.keyValue else {
                lines.removeFirst()
                continue
            }
            lines.removeFirst()
            map[key] = rest.isEmpty ? nested(&lines, under: indent) : scalar(rest)
        }
        return map
    }

    /// What follows `key:` on the lines below: a list (indented or not) or a map (indented), else null.
    private static func nested(_ lines: inout ArraySlice<CardLine>, under indent: Int) -> CardValue {
        guard let next = lines.first else { return .null }
        if next.isListItem, next.indent >= indent { return .list(parseList(&lines, indent: next.indent)) }
        if next.indent > indent { return .map(parseMap(&lines, indent: next.indent)) }
        return .null
    }

    private static func parseList(_ lines: inout ArraySlice<CardLine>, indent: Int) -> [CardValue] {
        var list: [CardValue] = []
        while let line = lines.first, line.indent == indent, line.isListItem {
            lines.removeFirst()
            let item = CardLine(indent: indent + 2, text: line.text.dropFirst(2))
            if let (key, rest) = item.keyValue {
                // A map as an item: its first pair on the dash's line, the others below, aligned with it.
                var map = [key: rest.isEmpty ? nested(&lines, under: item.indent) : scalar(rest)]
                map.merge(parseMap(&lines, indent: item.indent)) { first, _ in first }
                list.append(.map(map))
            } else {
                list.append(scalar(item.text))
            }
        }
        return list
    }

    private static func scalar(_ raw: Substring) -> CardValue {
        var text = raw.trimmingCharacters(in: .whitespaces)
        for quote in ["\"", "'"] where text.count >= 2 && text.hasPrefix(quote) && text.hasSuffix(quote) {
            return .string(String(text.dropFirst().dropLast()))
        }
        if let comment = text.range(of: " #") {
            text = text[..<comment.lowerBound].trimmingCharacters(in: .whitespaces)
        }
        if text.hasPrefix("["), text.hasSuffix("]") {
            let inner = text.dropFirst().dropLast()
            return .list(inner.isEmpty ? [] : inner.split(separator: ",").map { scalar($0) })
        }
        switch text {
        case "true", "True": return .bool(true)
        case "false", "False": return .bool(false)
        case "", "null", "~": return .null
        default: break
        }
        if let integer = Int64(text) { return .integer(integer) }
        if let number = Double(text), number.isFinite { return .number(number) }
        return .string(text)
    }
}

/// One non-empty line of a metadata block, comments left out.
private struct CardLine {
    let indent: Int
    let text: Substring

    init(indent: Int, text: Substring) {
        self.indent = indent
        self.text = text
    }

    init?(_ line: Substring) {
        let text = line.drop { $0 == " " }
        guard !text.isEmpty, !text.hasPrefix("#") else { return nil }
        indent = line.count - text.count
        self.text = text
    }

    var isListItem: Bool { text == "-" || text.hasPrefix("- ") }

    /// `key: value` or `key:`, the key unquoted.
    var keyValue: (String, Substring)? {
        guard
            let colon = text.range(of: ": ")
                ?? (text.hasSuffix(":") ? text.index(before: text.endIndex)..<text.endIndex : nil)
        else { return nil }
        var key = text[..<colon.lowerBound].trimmingCharacters(in: .whitespaces)
        if key.count >= 2, let first = key.first, first == "\"" || first == "'", key.last == first {
            key = String(key.dropFirst().dropLast())
        }
        guard !key.isEmpty, !key.contains(" #") else { return nil }
        return (key, text[colon.upperBound...])
    }
}

/// A value of a model card's metadata, encoded as JSON.
indirect enum CardValue: Encodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case list([CardValue])
    case map([String: CardValue])

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        case .map(let value): try container.encode(value)
        }
    }
}
