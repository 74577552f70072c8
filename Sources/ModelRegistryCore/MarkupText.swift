/// Text put into HTML or XML (a web page, an S3 request body): the five characters either gives meaning to,
/// written as references every HTML and XML parser reads, so the text can never close an element or an
/// attribute.
public enum MarkupText {
    public static func escaped(_ text: some StringProtocol) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
