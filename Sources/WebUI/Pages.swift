import Foundation
import ModelFormats
import ModelRegistryCore
import OCIArtifacts

// What each page shows, as plain values the templates read (stored properties only: the template engine reads
// values through reflection). Every string here is text; the templates escape it. The one exception is a model
// card's HTML, which SafeMarkdown makes from escaped text.

/// Who is looking at a page.
public struct Viewer: Sendable {
    /// The name of the token signed in with; nil for an anonymous reader.
    public var name: String?
    /// Whether the token's scope allows moving aliases and deprecating.
    public var canWrite: Bool
    /// The session's CSRF token, put into every form.
    public var csrfToken: String

    public init(name: String?, canWrite: Bool, csrfToken: String) {
        self.name = name
        self.canWrite = canWrite
        self.csrfToken = csrfToken
    }

    public static let anonymous = Viewer(name: nil, canWrite: false, csrfToken: "")
}

/// The frame around every page: title, who is signed in, and a message from the last action.
public struct Chrome: Sendable {
    var title: String
    var signedIn: Bool
    var userName: String
    var csrfToken: String
    var notice: String?
    var error: String?

    public init(title: String, viewer: Viewer, notice: String? = nil, error: String? = nil) {
        self.title = title
        signedIn = viewer.name != nil
        userName = viewer.name ?? ""
        csrfToken = viewer.csrfToken
        self.notice = notice
        self.error = error
    }
}

/// Where things are on the site; every segment percent-encoded.
public enum WebPaths {
    public static let root = "/ui"

    public static func model(_ name: ModelName) -> String {
        root + "/models/" + name.value.split(separator: "/").map(segment).joined(separator: "/")
    }

    public static func variant(_ name: ModelName, _ version: VersionName, _ variant: VariantName) -> String {
        model(name) + "/versions/" + segment(version.value) + "/variants/" + segment(variant.value)
    }

    public static func alias(_ name: ModelName, _ alias: AliasName) -> String {
        model(name) + "/aliases/" + segment(alias.value)
    }

    public static func deprecation(_ name: ModelName, _ version: VersionName) -> String {
        model(name) + "/versions/" + segment(version.value) + "/deprecate"
    }

    public static func audit(model: ModelName? = nil, before: Int64? = nil) -> String {
        var query: [String] = []
        if let model { query.append("model=" + segment(model.value)) }
        if let before { query.append("before=\(before)") }
        return root + "/audit" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    static func segment(_ text: some StringProtocol) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}

/// Phrases several pages use.
enum PageText {
    /// What an alias points to, or pointed to: `2`, `2 (awq-int4)` with a variant pinned.
    static func target(_ version: VersionName, _ variant: VariantName?) -> String {
        version.value + (variant.map { " (\($0))" } ?? "")
    }

    /// `by ci at 2026-12-05T10:00:00.000Z: superseded by 2`, after "deprecated".
    static func deprecation(_ deprecation: Deprecation) -> String {
        "by \(deprecation.by) at \(deprecation.at)" + (deprecation.reason.map { ": \($0)" } ?? "")
    }
}

/// A command a reader can copy to get the model with a client this registry speaks to.
public struct CopyCommand: Sendable {
    var label: String
    var text: String

    /// The registry's own clients for `release` (`NAME@prod`, `NAME:1 --variant awq-int4`), and the other
    /// protocols it serves: the Hub's revision (`prod`, `1@awq-int4`) and the OCI tag (`prod`, `1__awq-int4`).
    static func all(release: String, model: ModelName, hubRevision: String, ociTag: String, origin: String)
        -> [CopyCommand]
    {
        let host = origin.replacing(/^https?:\/\//, with: "")
        return [
            CopyCommand(
                label: "fetch (init container)", text: "MODELREG_URL=\(origin) modelreg fetch \(release) --dest /models"
            ),
            CopyCommand(label: "pull", text: "MODELREG_URL=\(origin) modelreg pull \(release) ./\(model.value)"),
            CopyCommand(
                label: "Hugging Face Hub",
                text: "HF_ENDPOINT=\(origin)/hf hf download \(model.value) --revision \(hubRevision)"),
            CopyCommand(label: "OCI (oras)", text: "oras pull \(host)/\(model.value):\(ociTag) -o ./\(model.value)"),
        ]
    }
}

// MARK: - Catalogue

public struct CataloguePage: Sendable {
    var chrome: Chrome
    var filter: String
    var models: [Entry]
    var hasModels: Bool
    var isEmpty: Bool
    var nothingMatches: Bool

    struct Entry: Sendable {
        var name: String
        var href: String
        var newestVersion: String
        var newestDeprecated: Bool
        var latestVersion: String?
        var versionCount: String
        /// Nil when none is: a template section shows for any value.
        var deprecatedCount: Int?
        var size: String
        var aliases: [AliasCell]
        var variants: [VariantCell]
    }

    struct AliasCell: Sendable {
        var name: String
        var target: String
    }

    struct VariantCell: Sendable {
        var name: String
        var href: String
        var format: String
        var quantization: String
        var size: String
    }

    /// One model as the catalogue lists it: its detail and the manifests of its newest version's variants.
    public struct Model: Sendable {
        public var detail: ModelDetail
        public var latestVersion: VersionName?
        public var newestManifests: [VariantName: Manifest]

        public init(detail: ModelDetail, latestVersion: VersionName?, newestManifests: [VariantName: Manifest]) {
            self.detail = detail
            self.latestVersion = latestVersion
            self.newestManifests = newestManifests
        }
    }

    /// `filter` keeps the models whose name contains it, ignoring case.
    public init(models: [Model], filter: String, viewer: Viewer) {
        chrome = Chrome(title: "Models", viewer: viewer)
        self.filter = filter
        let kept = models.filter { filter.isEmpty || $0.detail.name.value.localizedCaseInsensitiveContains(filter) }
        self.models = kept.map { model in
            let detail = model.detail
            let newest = detail.versions.first
            return Entry(
                name: detail.name.value, href: WebPaths.model(detail.name),
                newestVersion: newest?.name.value ?? "", newestDeprecated: newest?.deprecation != nil,
                latestVersion: model.latestVersion?.value,
                versionCount: detail.versions.count == 1 ? "1 version" : "\(detail.versions.count) versions",
                deprecatedCount: Self.nonZero(detail.versions.count { $0.deprecation != nil }),
                size: ByteCount.format(detail.versions.reduce(0) { $0 + $1.size }),
                aliases: detail.aliases.map {
                    AliasCell(name: $0.name.value, target: PageText.target($0.version, $0.variant))
                },
                variants: (newest?.variants ?? []).map { variant in
                    VariantCell(
                        name: variant.name.value,
                        href: WebPaths.variant(detail.name, newest!.name, variant.name),
                        format: variant.format.rawValue,
                        quantization: model.newestManifests[variant.name]?.quantization?.summary ?? "none",
                        size: ByteCount.format(variant.size))
                })
        }
        hasModels = !kept.isEmpty
        isEmpty = models.isEmpty
        nothingMatches = !models.isEmpty && kept.isEmpty
    }

    static func nonZero(_ count: Int) -> Int? { count > 0 ? count : nil }
}

// MARK: - Model

/// The GPU a reader sizes variants for; empty fields take the estimate's defaults.
public struct Calculator: Sendable, Equatable {
    public var gpuMemory: Int64?
    public var contextLength: Int64?
    public var concurrency: Int64
    public var kvCacheDtype: KVCacheDtype

    public init(
        gpuMemory: Int64? = nil, contextLength: Int64? = nil, concurrency: Int64 = 1, kvCacheDtype: KVCacheDtype = .auto
    ) {
        self.gpuMemory = gpuMemory
        self.contextLength = contextLength
        self.concurrency = concurrency
        self.kvCacheDtype = kvCacheDtype
    }

    /// From the calculator form's query fields (`gpu`, `context`, `concurrency`, `kv`); a value that does not
    /// read is an error to show beside the form, not a failed page.
    public static func parse(_ query: FormBody) -> (Calculator, error: String?) {
        var calculator = Calculator()
        var errors: [String] = []
        if let gpu = query["gpu"] {
            do throws(RegistryError) {
                calculator.gpuMemory = try ByteCount.parse(gpu)
            } catch {
                errors.append(error.message)
            }
        }
        if let context = query["context"] {
            if let value = Int64(context), value > 0 {
                calculator.contextLength = value
            } else {
                errors.append("context must be a positive number of tokens, not '\(context.prefix(40))'")
            }
        }
        if let concurrency = query["concurrency"] {
            if let value = Int64(concurrency), value > 0, value <= 1 << 20 {
                calculator.concurrency = value
            } else {
                errors.append("concurrency must be a positive number of sequences, not '\(concurrency.prefix(40))'")
            }
        }
        if let kv = query["kv"] {
            if let dtype = KVCacheDtype(rawValue: kv) {
                calculator.kvCacheDtype = dtype
            } else {
                errors.append(
                    "KV cache dtype must be one of \(KVCacheDtype.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        return (calculator, errors.isEmpty ? nil : errors.joined(separator: "; "))
    }
}

public struct ModelPage: Sendable {
    var chrome: Chrome
    var name: String
    var href: String
    var auditHref: String
    var versions: [VersionBlock]
    var aliases: [AliasRow]
    var hasAliases: Bool
    var images: [ImageRow]
    var commands: [CopyCommand]
    var calculator: CalculatorForm
    var canWrite: Bool
    var csrfToken: String
    var versionNames: [String]
    var setAliasAction: String

    struct VersionBlock: Sendable {
        var name: String
        var createdAt: String
        var size: String
        var aliases: String?
        var deprecated: Bool
        var deprecation: String
        var deprecateAction: String
        var variants: [VariantRow]
    }

    struct VariantRow: Sendable {
        var name: String
        var href: String
        var format: String
        var quantization: String
        var bits: String
        var parameters: String
        var weightBytes: String
        var memory: String
        /// "fits", "too large" or "unknown" against the calculator's GPU; empty without one.
        var fit: String
        var fits: Bool
        var chosen: Bool
    }

    struct AliasRow: Sendable {
        var name: String
        var version: String
        var variant: String
        var updatedBy: String
        var updatedAt: String
        var action: String
        var history: [HistoryRow]
        var promoteSources: [String]
        var canPromote: Bool
    }

    struct HistoryRow: Sendable {
        var action: String
        var from: String
        var to: String
        var actor: String
        var at: String
    }

    struct ImageRow: Sendable {
        var alias: String
        var release: String
        var layout: String
        var state: String
    }

    struct CalculatorForm: Sendable {
        var gpu: String
        var context: String
        var concurrency: String
        var kvOptions: [Option]
        var active: Bool
        var error: String?
        var summary: String
    }

    struct Option: Sendable {
        var value: String
        var selected: Bool
    }

    /// A cache image's state for an alias's target.
    public struct ImageState: Sendable {
        public var alias: AliasName
        public var release: String
        public var layout: String
        public var state: String

        public init(alias: AliasName, release: String, layout: String, state: String) {
            self.alias = alias
            self.release = release
            self.layout = layout
            self.state = state
        }
    }

    /// - Parameters:
    ///   - manifests: every variant's manifest, by version.
    ///   - histories: each alias's moves, oldest first (as the store keeps them); shown newest first.
    ///   - calculatorText: the calculator's fields as typed, to show them again.
    public init(
        detail: ModelDetail, manifests: [VersionName: [VariantName: Manifest]],
        histories: [AliasName: [AliasHistoryEntry]], images: [ImageState], calculator: Calculator,
        calculatorText: FormBody, calculatorError: String?, origin: String, viewer: Viewer, notice: String? = nil,
        error: String? = nil
    ) {
        let name = detail.name
        chrome = Chrome(title: name.value, viewer: viewer, notice: notice, error: error)
        self.name = name.value
        href = WebPaths.model(name)
        auditHref = WebPaths.audit(model: name)
        canWrite = viewer.canWrite
        csrfToken = viewer.csrfToken
        versionNames = detail.versions.map(\.name.value)
        setAliasAction = WebPaths.model(name) + "/aliases"
        versions = detail.versions.map { version in
            let candidates = version.variants.compactMap { summary in
                manifests[version.name]?[summary.name].map { (summary.name, $0) }
            }
            let decision = calculator.gpuMemory.map { budget in
                VariantFit.choose(
                    candidates, budget: budget, contextLength: calculator.contextLength,
                    concurrency: calculator.concurrency, kvCacheDtype: calculator.kvCacheDtype)
            }
            return VersionBlock(
                name: version.name.value, createdAt: version.createdAt, size: ByteCount.format(version.size),
                aliases: version.aliases.isEmpty ? nil : version.aliases.map(\.value).joined(separator: ", "),
                deprecated: version.deprecation != nil,
                deprecation: version.deprecation.map { "deprecated " + PageText.deprecation($0) } ?? "",
                deprecateAction: WebPaths.deprecation(name, version.name),
                variants: version.variants.map { summary in
                    let manifest = manifests[version.name]?[summary.name]
                    let estimate = manifest?.metadata.map {
                        MemoryEstimate(
                            metadata: $0, contextLength: calculator.contextLength,
                            concurrency: calculator.concurrency, kvCacheDtype: calculator.kvCacheDtype)
                    }
                    let need = decision?.needs.first { $0.variant == summary.name }
                    return VariantRow(
                        name: summary.name.value, href: WebPaths.variant(name, version.name, summary.name),
                        format: summary.format.rawValue,
                        quantization: manifest?.quantization?.method ?? "none",
                        bits: manifest?.quantization?.bits.map(String.init) ?? "",
                        parameters: manifest?.metadata?.parameterCount.map(ParameterCount.format) ?? "",
                        weightBytes: manifest?.metadata.map { ByteCount.format($0.weightBytes) } ?? "",
                        memory: estimate.map { ByteCount.format($0.totalBytes) } ?? "unknown",
                        fit: need.map { need in
                            need.estimate == nil ? "unknown" : need.fits ? "fits" : "too large"
                        } ?? "",
                        fits: need?.fits ?? false,
                        chosen: decision?.chosen == summary.name)
                })
        }
        aliases = detail.aliases.map { alias in
            ModelPage.AliasRow(
                name: alias.name.value, version: alias.version.value, variant: alias.variant?.value ?? "",
                updatedBy: alias.updatedBy, updatedAt: alias.updatedAt, action: WebPaths.alias(name, alias.name),
                history: (histories[alias.name] ?? []).reversed().map { entry in
                    HistoryRow(
                        action: entry.action.rawValue,
                        from: entry.fromVersion.map { PageText.target($0, entry.fromVariant) } ?? "",
                        to: PageText.target(entry.toVersion, entry.toVariant),
                        actor: entry.actor, at: entry.at)
                },
                promoteSources: detail.aliases.map(\.name.value).filter { $0 != alias.name.value },
                canPromote: detail.aliases.count > 1)
        }
        hasAliases = !detail.aliases.isEmpty
        self.images = images.map {
            ImageRow(alias: $0.alias.value, release: $0.release, layout: $0.layout, state: $0.state)
        }
        // The production alias when there is one, else the newest version.
        let tag = detail.aliases.first { $0.name.value == "prod" }?.name.value ?? detail.versions.first?.name.value
        commands =
            tag.map { tag in
                let release = detail.aliases.contains { $0.name.value == tag } ? "\(name)@\(tag)" : "\(name):\(tag)"
                return CopyCommand.all(release: release, model: name, hubRevision: tag, ociTag: tag, origin: origin)
            } ?? []
        self.calculator = CalculatorForm(
            gpu: calculatorText.fields["gpu"] ?? "", context: calculatorText.fields["context"] ?? "",
            concurrency: calculatorText.fields["concurrency"] ?? "",
            kvOptions: KVCacheDtype.allCases.map {
                Option(value: $0.rawValue, selected: $0 == calculator.kvCacheDtype)
            },
            active: calculator.gpuMemory != nil, error: calculatorError,
            summary: calculator.gpuMemory.map { budget in
                "Marked against \(ByteCount.format(budget)) at "
                    + (calculator.contextLength.map { "\($0) tokens" } ?? "each model's own context")
                    + " × \(calculator.concurrency), KV cache \(calculator.kvCacheDtype.rawValue)"
            } ?? "")
    }
}

// MARK: - Variant

public struct VariantPage: Sendable {
    var chrome: Chrome
    var model: String
    var modelHref: String
    var version: String
    var variant: String
    var digest: String
    var format: String
    var size: String
    var files: [FileRow]
    var facts: [Fact]
    var cardHTML: String?
    var deprecation: String?
    var commands: [CopyCommand]

    struct FileRow: Sendable {
        var path: String
        var size: String
        var bytes: Int64
        var digest: String
    }

    struct Fact: Sendable {
        var label: String
        var value: String
    }

    /// `card` is the text of the variant's `README.md`, if it has one.
    public init(stored: StoredManifest, manifest: Manifest, card: String?, origin: String, viewer: Viewer) {
        let name = stored.model
        chrome = Chrome(title: "\(name):\(stored.version) \(stored.variant)", viewer: viewer)
        model = name.value
        modelHref = WebPaths.model(name)
        version = stored.version.value
        variant = stored.variant.value
        digest = stored.digest.description
        format = manifest.format.rawValue
        size = ByteCount.format(manifest.totalSize)
        files = manifest.files.map {
            FileRow(path: $0.path.value, size: ByteCount.format($0.size), bytes: $0.size, digest: $0.digest.description)
        }
        var facts: [Fact] = []
        func add(_ label: String, _ value: String?) {
            if let value, !value.isEmpty { facts.append(Fact(label: label, value: value)) }
        }
        if let quantization = manifest.quantization {
            add("quantization", quantization.summary)
        }
        if let metadata = manifest.metadata {
            add("architecture", metadata.architecture)
            add("parameters", metadata.parameterCount.map { "\(ParameterCount.format($0)) (\($0))" })
            add("weights", ByteCount.format(metadata.weightBytes))
            add("dtypes", metadata.dtypeSummary)
            add("torch dtype", metadata.torchDtype)
            add("context", metadata.contextLength.map { "\($0) tokens" })
            add("layers", metadata.layers.map(String.init))
            add("hidden size", metadata.hiddenSize.map(String.init))
            add("attention heads", metadata.attentionHeads.map(String.init))
            add("KV heads", metadata.kvHeads.map(String.init))
            add("head dim", metadata.headDim.map(String.init))
            add("KV cache a token", metadata.kvCacheBytesPerToken.map { ByteCount.format($0) })
            add("GPU memory (own context, 1 sequence)", ByteCount.format(MemoryEstimate(metadata: metadata).totalBytes))
        }
        self.facts = facts
        cardHTML = card.map(SafeMarkdown.html)
        deprecation = stored.deprecation.map { "Deprecated " + PageText.deprecation($0) }
        commands = CopyCommand.all(
            release: "\(name):\(stored.version) --variant \(stored.variant)", model: name,
            hubRevision: "\(stored.version)@\(stored.variant)",
            ociTag: stored.version.value + OCITags.variantSeparator + stored.variant.value, origin: origin)
    }
}

// MARK: - Audit

public struct AuditPage: Sendable {
    var chrome: Chrome
    var model: String
    var entries: [Row]
    var olderHref: String?
    var isEmpty: Bool

    struct Row: Sendable {
        var id: Int64
        var at: String
        var actor: String
        var action: String
        var target: String
        var detail: String
        var modelHref: String?
    }

    /// `entries` newest first, at most `pageSize`: a full page links to the older ones.
    public init(entries: [AuditEntry], model: ModelName?, pageSize: Int, viewer: Viewer) {
        chrome = Chrome(title: "Audit log", viewer: viewer)
        self.model = model?.value ?? ""
        self.entries = entries.map { entry in
            Row(
                id: entry.id, at: entry.at, actor: entry.actor, action: entry.action.rawValue, target: entry.target,
                detail: entry.detail ?? "", modelHref: entry.model.map(WebPaths.model))
        }
        olderHref = entries.count == pageSize ? entries.last.map { WebPaths.audit(model: model, before: $0.id) } : nil
        isEmpty = entries.isEmpty
    }
}

// MARK: - Sign-in and errors

public struct SignInPage: Sendable {
    var chrome: Chrome
    var formToken: String
    var next: String

    public init(formToken: String, next: String, error: String? = nil) {
        chrome = Chrome(title: "Sign in", viewer: .anonymous, error: error)
        self.formToken = formToken
        self.next = next
    }
}

public struct ErrorPage: Sendable {
    var chrome: Chrome
    var status: Int
    var message: String

    public init(status: Int, message: String, viewer: Viewer) {
        chrome = Chrome(title: "Error \(status)", viewer: viewer)
        self.status = status
        self.message = message
    }
}
