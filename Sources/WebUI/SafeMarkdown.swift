import ModelRegistryCore

/// A model card's Markdown as HTML that can carry no markup of its own: every character of the text is escaped
/// first, and only the constructs below become tags. Raw HTML in the card shows as text; a link keeps its
/// target only when it is `http:`, `https:` or `mailto:` (a `javascript:` link is its text alone); images are
/// links, so a card never makes the browser load anything.
///
/// Blocks: `#` headings (one level below the page's own), paragraphs, `-`/`*`/`+` and numbered lists, `>`
/// quotes, fenced code, `---` rules and pipe tables. Inline: code spans, links, `**strong**`, `*emphasis*`.
/// The YAML metadata block a card opens with is left out: the page shows what it says elsewhere.
public enum SafeMarkdown {
    /// Cards larger than this are cut (and say so): a page is not the place for a book.
    public static let maxLength = 256 << 10

    public static func html(_ markdown: String) -> String {
        var text = Substring(markdown)
        var cut = false
        if text.utf8.count > maxLength {
            text = Substring(String(decoding: text.utf8.prefix(maxLength), as: UTF8.self))
            cut = true
        }
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)[...]
        skipFrontMatter(&lines)
        var out = ""
        while let line = lines.first {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty {
                lines.removeFirst()
            } else if trimmed.hasPrefix("```") || trimmed.hasPrefix("~~~") {
                out += fence(&lines)
            } else if let (level, title) = heading(trimmed) {
                lines.removeFirst()
                out += "<h\(level)>\(inline(title))</h\(level)>\n"
            } else if isRule(trimmed) {
                lines.removeFirst()
                out += "<hr>\n"
            } else if trimmed.hasPrefix(">") {
                out += quote(&lines)
            } else if listItem(trimmed) != nil {
                out += list(&lines)
            } else if trimmed.hasPrefix("|"), lines.count > 1, isTableSeparator(lines[lines.startIndex + 1]) {
                out += table(&lines)
            } else {
                out += paragraph(&lines)
            }
        }
        if cut { out += "<p><em>The card is longer than \(maxLength >> 10) KiB; the rest is not shown.</em></p>\n" }
        return out
    }

    private static func skipFrontMatter(_ lines: inout ArraySlice<Substring>) {
        guard lines.first?.trimmingCharacters(in: .whitespaces) == "---",
            let end = lines.dropFirst().firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "---" })
        else { return }
        lines = lines[(end + 1)...]
    }

    private static func heading(_ line: String) -> (Int, Substring)? {
        let hashes = line.prefix { $0 == "#" }.count
        guard (1...6).contains(hashes) else { return nil }
        let rest = line.dropFirst(hashes)
        guard rest.isEmpty || rest.first == " " else { return nil }
        // The page's own headings are h1 and h2.
        return (min(hashes + 2, 6), Substring(rest.trimmingCharacters(in: .whitespaces)))
    }

    private static func isRule(_ line: String) -> Bool {
        let marks = line.filter { $0 != " " }
        return marks.count >= 3 && (Set(marks) == ["-"] || Set(marks) == ["*"] || Set(marks) == ["_"])
    }

    /// The item's text and whether the list is numbered.
    private static func listItem(_ line: String) -> (text: Substring, ordered: Bool)? {
        if let first = line.first, "-*+".contains(first), line.dropFirst().first == " " {
            return (line.dropFirst(2), false)
        }
        let digits = line.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 9 else { return nil }
        let rest = line.dropFirst(digits.count)
        guard rest.hasPrefix(". ") || rest.hasPrefix(") ") else { return nil }
        return (rest.dropFirst(2), true)
    }

    private static func fence(_ lines: inout ArraySlice<Substring>) -> String {
        let opening = lines.removeFirst().trimmingCharacters(in: .whitespaces)
        let marker = String(opening.prefix(3))
        var code: [Substring] = []
        while let line = lines.first {
            lines.removeFirst()
            if line.trimmingCharacters(in: .whitespaces).hasPrefix(marker) { break }
            code.append(line)
        }
        return "<pre><code>\(MarkupText.escaped(code.joined(separator: "\n")))</code></pre>\n"
    }

    private static func quote(_ lines: inout ArraySlice<Substring>) -> String {
        var quoted: [String] = []
        while let line = lines.first, case let trimmed = line.trimmingCharacters(in: .whitespaces),
            trimmed.hasPrefix(">")
        {
            lines.removeFirst()
            quoted.append(trimmed.dropFirst().trimmingCharacters(in: .whitespaces))
        }
        return "<blockquote><p>\(inline(quoted.joined(separator: " ")))</p></blockquote>\n"
    }

    private static func list(_ lines: inout ArraySlice<Substring>) -> String {
        let ordered = listItem(lines.first!.trimmingCharacters(in: .whitespaces))!.ordered
        var items: [String] = []
        while let line = lines.first {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if let item = listItem(trimmed), item.ordered == ordered {
                items.append(String(item.text))
            } else if !trimmed.isEmpty, line.first == " " || line.first == "\t", !items.isEmpty {
                // A continuation of the item above.
                items[items.count - 1] += " " + trimmed
            } else {
                break
            }
            lines.removeFirst()
        }
        let tag = ordered ? "ol" : "ul"
        return "<\(tag)>" + items.map { "<li>\(inline($0))</li>" }.joined() + "</\(tag)>\n"
    }

    private static func isTableSeparator(_ line: Substring) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        return trimmed.hasPrefix("|") && trimmed.contains("-")
            && trimmed.allSatisfy { "|-: ".contains($0) }
    }

    private static func cells(_ line: Substring) -> [String] {
        var trimmed = Substring(line.trimmingCharacters(in: .whitespaces))
        if trimmed.hasPrefix("|") { trimmed = trimmed.dropFirst() }
        if trimmed.hasSuffix("|") { trimmed = trimmed.dropLast() }
        return trimmed.split(separator: "|", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
    }

    private static func table(_ lines: inout ArraySlice<Substring>) -> String {
        let header = cells(lines.removeFirst())
        lines.removeFirst()
        var rows: [[String]] = []
        while let line = lines.first, line.trimmingCharacters(in: .whitespaces).hasPrefix("|") {
            lines.removeFirst()
            rows.append(cells(line))
        }
        var out = "<table><thead><tr>" + header.map { "<th>\(inline($0))</th>" }.joined() + "</tr></thead><tbody>"
        for row in rows {
            out += "<tr>" + row.map { "<td>\(inline($0))</td>" }.joined() + "</tr>"
        }
        return out + "</tbody></table>\n"
    }

    private static func paragraph(_ lines: inout ArraySlice<Substring>) -> String {
        var text: [String] = []
        while let line = lines.first {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("```") || trimmed.hasPrefix("~~~") || heading(trimmed) != nil
                || trimmed.hasPrefix(">") || (listItem(trimmed) != nil && !text.isEmpty && !trimmed.first!.isNumber)
            {
                break
            }
            lines.removeFirst()
            text.append(trimmed)
        }
        return "<p>\(inline(text.joined(separator: " ")))</p>\n"
    }

    /// Code spans are cut out first, so nothing inside them is read as emphasis or a link.
    static func inline(_ text: some StringProtocol) -> String {
        let parts = text.split(separator: "`", omittingEmptySubsequences: false)
        var out = ""
        var index = 0
        while index < parts.count {
            // An even part is text; an odd one is code if a closing backtick follows.
            if index % 2 == 1, index < parts.count - 1 {
                out += "<code>\(MarkupText.escaped(parts[index]))</code>"
            } else {
                out += (index % 2 == 1 ? "`" : "") + emphasis(links(MarkupText.escaped(parts[index])))
            }
            index += 1
        }
        return out
    }

    /// `[text](target)` and `![alt](target)` in escaped text: a link when the target's scheme is allowed.
    private static func links(_ escaped: String) -> String {
        escaped.replacing(/!?\[([^\]\[]*)\]\(([^()\s]*)\)/) { match in
            let (label, target) = (String(match.1), String(match.2))
            guard isAllowed(target) else { return label }
            return "<a href=\"\(target)\" rel=\"nofollow noopener noreferrer\">\(label.isEmpty ? target : label)</a>"
        }
    }

    /// Only these schemes lead anywhere; anything else (`javascript:`, `data:`, relative paths that could name
    /// the registry's own forms) is shown as text.
    private static func isAllowed(_ target: String) -> Bool {
        let lowered = target.lowercased()
        return ["https://", "http://", "mailto:"].contains { lowered.hasPrefix($0) } && lowered.count > 8
    }

    private static func emphasis(_ escaped: String) -> String {
        escaped.replacing(/\*\*([^*]+)\*\*/) { "<strong>\($0.1)</strong>" }
            .replacing(/\*([^*\s][^*]*)\*/) { "<em>\($0.1)</em>" }
    }
}
