import Foundation

/// A YAML document built in code and written out in one fixed form: maps keep their order, every string is
/// double-quoted (JSON's escapes are YAML's), so the same input always gives the same bytes and no value is
/// read back as another type ("yes", "1.0", "0755").
public indirect enum YAMLNode: Equatable, Sendable {
    case map([(String, YAMLNode)])
    case list([YAMLNode])
    case string(String)
    case int(Int64)
    case bool(Bool)

    public static func == (left: YAMLNode, right: YAMLNode) -> Bool { left.text() == right.text() }

    /// The node as a block, each line indented by `indent` spaces.
    public func text(indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .map(let entries) where entries.isEmpty: return pad + "{}\n"
        case .list(let items) where items.isEmpty: return pad + "[]\n"
        case .map(let entries):
            return entries.map { key, value in
                switch value {
                case .map(let inner) where !inner.isEmpty: pad + key + ":\n" + value.text(indent: indent + 2)
                case .list(let inner) where !inner.isEmpty: pad + key + ":\n" + value.text(indent: indent + 2)
                default: pad + key + ": " + value.scalar + "\n"
                }
            }.joined()
        case .list(let items):
            return items.map { item in
                switch item {
                case .map(let inner) where !inner.isEmpty:
                    // The item's first line follows the dash; the rest keep the item's own indentation.
                    return pad + "- " + item.text(indent: indent + 2).dropFirst(indent + 2)
                case .list(let inner) where !inner.isEmpty:
                    return pad + "- " + item.text(indent: indent + 2).dropFirst(indent + 2)
                default:
                    return pad + "- " + item.scalar + "\n"
                }
            }.joined()
        default:
            return pad + scalar + "\n"
        }
    }

    private var scalar: String {
        switch self {
        case .string(let text):
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            let data = try? encoder.encode(text)
            return data.map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
        case .int(let number): return String(number)
        case .bool(let value): return value ? "true" : "false"
        case .map: return "{}"
        case .list: return "[]"
        }
    }

    /// Documents separated as `kubectl apply -f` reads them.
    public static func stream(_ documents: [YAMLNode]) -> String {
        documents.map { $0.text() }.joined(separator: "---\n")
    }
}
