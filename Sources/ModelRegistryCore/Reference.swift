/// A reference to a model or one of its releases, in the one grammar the CLI and the API share:
///
///     NAME                 the model itself (show only)
///     NAME:VERSION         a version
///     NAME@ALIAS           whatever the alias points to now
///     NAME@sha256:<hex>    exactly one variant manifest, forever
public struct ModelReference: Hashable, Sendable, CustomStringConvertible {
    public enum Target: Hashable, Sendable {
        case model
        case version(VersionName)
        case alias(AliasName)
        case digest(Digest)
    }

    public var name: ModelName
    public var target: Target

    public init(name: ModelName, target: Target) {
        self.name = name
        self.target = target
    }

    public init(parsing text: some StringProtocol) throws(RegistryError) {
        let text = String(text)
        guard !text.isEmpty else {
            throw RegistryError(
                .invalidReference, "empty reference: expected NAME, NAME:VERSION, NAME@ALIAS or NAME@sha256:<digest>")
        }
        if let at = text.firstIndex(of: "@") {
            let name = try ModelName(text[..<at])
            let rest = text[text.index(after: at)...]
            if rest.hasPrefix(Digest.prefix) {
                self.init(name: name, target: .digest(try Digest(parsing: rest)))
            } else {
                self.init(name: name, target: .alias(try AliasName(rest)))
            }
        } else if let colon = text.firstIndex(of: ":") {
            let name = try ModelName(text[..<colon])
            self.init(name: name, target: .version(try VersionName(text[text.index(after: colon)...])))
        } else {
            self.init(name: try ModelName(text), target: .model)
        }
    }

    /// The part after the model name (`:1.0`, `@prod`, `@sha256:…`), empty for `.model`.
    public var suffix: String {
        switch target {
        case .model: ""
        case .version(let version): ":\(version)"
        case .alias(let alias): "@\(alias)"
        case .digest(let digest): "@\(digest)"
        }
    }

    public var description: String { name.value + suffix }

    /// Parses a reference that must point at a release (not just a model).
    public static func release(_ text: some StringProtocol) throws(RegistryError) -> ModelReference {
        let reference = try ModelReference(parsing: text)
        if case .model = reference.target {
            throw RegistryError(
                .invalidReference,
                "reference '\(text)' names no release: use NAME:VERSION, NAME@ALIAS or NAME@sha256:<digest>"
            )
        }
        return reference
    }
}
