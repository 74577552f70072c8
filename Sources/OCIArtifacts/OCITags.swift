import ModelRegistryCore

/// The OCI tags of a model and the variant each names. A tag is a version (its only or `default` variant),
/// an alias (its variant), `latest` (the newest version not deprecated), or `VERSION__VARIANT`; where two
/// readings of one tag exist, an alias wins over `latest`, `latest` over a version, a version over
/// `VERSION__VARIANT`. The runnable image of any of them is the tag followed by `__modelcar`.
public struct OCITags: Sendable {
    public struct Target: Hashable, Sendable {
        public var version: VersionName
        public var variant: VariantName
    }

    /// Between a version and a variant in a tag (`2__awq-int4`).
    public static let variantSeparator = "__"
    /// After a tag, names its runnable image (`prod__modelcar`).
    public static let runnableImageSuffix = "__modelcar"
    /// The OCI tag grammar allows at most this many characters.
    public static let maxLength = 128

    public let targets: [String: Target]

    public init(_ model: ModelDetail) {
        var targets: [String: Target] = [:]
        func defaultVariant(_ version: VersionSummary) -> VariantName? {
            if version.variants.count == 1 { return version.variants[0].name }
            return version.variants.first { $0.name == .default }?.name
        }
        for version in model.versions {
            for variant in version.variants {
                let tag = version.name.value + Self.variantSeparator + variant.name.value
                if tag.utf8.count <= Self.maxLength {
                    targets[tag] = Target(version: version.name, variant: variant.name)
                }
            }
        }
        for version in model.versions {
            if let variant = defaultVariant(version) {
                targets[version.name.value] = Target(version: version.name, variant: variant)
            }
        }
        // Versions are newest first.
        if let newest = model.versions.first(where: { $0.deprecation == nil }), let variant = defaultVariant(newest) {
            targets[AliasName.latest.value] = Target(version: newest.name, variant: variant)
        }
        for alias in model.aliases {
            guard let version = model.versions.first(where: { $0.name == alias.version }),
                let variant = alias.variant ?? defaultVariant(version)
            else { continue }
            targets[alias.name.value] = Target(version: alias.version, variant: variant)
        }
        self.targets = targets
    }

    /// Every tag in the order the tag listing gives them: byte order, as CNCF distribution sorts.
    public var sorted: [String] { targets.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }

    /// Whether `text` fits the OCI tag grammar, `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    public static func isValid(_ text: some StringProtocol) -> Bool {
        let bytes = Array(text.utf8)
        func word(_ c: UInt8) -> Bool {
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95
        }
        guard let first = bytes.first, word(first), bytes.count <= maxLength else { return false }
        return bytes.allSatisfy { word($0) || $0 == 46 || $0 == 45 }
    }
}
