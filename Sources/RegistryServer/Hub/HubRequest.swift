import ModelRegistryCore

/// A revision of the Hugging Face Hub protocol, as the registry reads it (README, "Hugging Face Hub protocol"):
/// `main` and `latest` are `@latest`; 40 hex digits are a commit, the first 40 of a variant manifest's digest, so
/// a commit names one variant forever; `VERSION@VARIANT` is a version's variant; any other name is an alias when
/// the model has one by that name, else a version.
enum HubRevision: Hashable, Sendable {
    case latest
    case commit(String)
    case variant(VersionName, VariantName)
    case name(String)

    init(parsing text: String) throws(RegistryError) {
        if text == "main" || text == "latest" {
            self = .latest
        } else if text.utf8.count == 40, text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) {
            self = .commit(text)
        } else if let at = text.firstIndex(of: "@") {
            self = .variant(
                try VersionName(text[..<at]), try VariantName(text[text.index(after: at)...]))
        } else {
            guard (try? VersionName(text)) != nil || (try? AliasName(text)) != nil else {
                throw RegistryError(.invalidReference, "revision '\(text.prefix(140))' is no alias, version or commit")
            }
            self = .name(text)
        }
    }
}

/// A request under `/hf`, from its path segments (percent-decoded). A repo id is a model name of one or two
/// parts; the word after it says what is asked.
enum HubRequest: Hashable, Sendable {
    /// `api/models/{repo}` and `api/models/{repo}/revision/{rev}`.
    case modelInfo(ModelName, revision: String)
    /// `api/models/{repo}/tree/{rev}[/{path}]`.
    case tree(ModelName, revision: String, path: String)
    /// `{repo}/resolve/{rev}/{path}`.
    case resolve(ModelName, revision: String, path: String)

    init(segments: [String]) throws {
        if segments.count >= 3, segments[0] == "api", segments[1] == "models" {
            let rest = Array(segments.dropFirst(2))
            let (name, after) = try Self.repo(rest, before: ["revision", "tree"])
            switch after.first {
            case nil:
                self = .modelInfo(name, revision: "main")
            case "revision" where after.count == 2:
                self = .modelInfo(name, revision: after[1])
            case "tree" where after.count >= 2:
                self = .tree(name, revision: after[1], path: after.dropFirst(2).joined(separator: "/"))
            default:
                throw Self.unknown(segments)
            }
        } else {
            let (name, after) = try Self.repo(segments, before: ["resolve"])
            guard after.count >= 3, after[0] == "resolve" else { throw Self.unknown(segments) }
            self = .resolve(name, revision: after[1], path: after.dropFirst(2).joined(separator: "/"))
        }
    }

    /// The repo id at the start of `segments` (two parts when the third segment is one of `words`, else one
    /// when the second is, else all of them) and what follows it.
    private static func repo(_ segments: [String], before words: Set<String>) throws(HubError)
        -> (ModelName, [String])
    {
        let length: Int
        if segments.count > 2, words.contains(segments[2]) {
            length = 2
        } else if segments.count > 1, words.contains(segments[1]) {
            length = 1
        } else {
            length = segments.count
        }
        guard (1...2).contains(length), let name = try? ModelName(segments.prefix(length).joined(separator: "/"))
        else {
            throw HubError.repoNotFound(segments.prefix(max(1, min(length, 2))).joined(separator: "/"))
        }
        return (name, Array(segments.dropFirst(length)))
    }

    private static func unknown(_ segments: [String]) -> RegistryError {
        RegistryError(
            .notFound,
            "no such Hub route /hf/\(segments.joined(separator: "/").prefix(300)): this registry answers the Hub's model downloads (api/models/REPO[/revision/REV], api/models/REPO/tree/REV[/PATH], REPO/resolve/REV/PATH)"
        )
    }

    var model: ModelName {
        switch self {
        case .modelInfo(let name, _), .tree(let name, _, _), .resolve(let name, _, _): name
        }
    }
}
