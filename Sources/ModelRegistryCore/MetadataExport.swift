import Foundation

/// Everything a metadata store holds, as of one moment, in a form every backend writes and reads: what a
/// backup keeps and a restore imports, so a snapshot taken on one backend restores onto another.
///
/// Blob records are left out: they mirror the blob store, so a restore records the blobs it puts back.
/// Every list has one order whatever the backend (models and aliases by name, versions and history oldest
/// first, tokens by creation, the audit log by id), so two stores with the same content export equal values.
public struct MetadataExport: Codable, Sendable, Equatable {
    /// The version of this layout; an import refuses a later one.
    public static let currentFormat = 1
    public static let mediaType = "application/vnd.modelreg.export.v1+json"

    public var format: Int
    public var models: [Model]
    public var tokens: [Token]
    /// Oldest first.
    public var audit: [AuditEntry]

    public init(models: [Model], tokens: [Token], audit: [AuditEntry]) {
        self.format = Self.currentFormat
        self.models = models
        self.tokens = tokens
        self.audit = audit
    }

    public struct Model: Codable, Sendable, Equatable {
        public var name: ModelName
        public var createdAt: String
        /// Oldest first.
        public var versions: [Version]
        /// By name.
        public var aliases: [AliasTarget]
        /// Every alias's moves, oldest first.
        public var history: [AliasHistoryEntry]
        /// Names never to be published again, by name.
        public var deletedVersions: [DeletedVersionName]

        public init(
            name: ModelName, createdAt: String, versions: [Version], aliases: [AliasTarget],
            history: [AliasHistoryEntry], deletedVersions: [DeletedVersionName]
        ) {
            self.name = name
            self.createdAt = createdAt
            self.versions = versions
            self.aliases = aliases
            self.history = history
            self.deletedVersions = deletedVersions
        }
    }

    public struct Version: Codable, Sendable, Equatable {
        public var name: VersionName
        public var createdAt: String
        public var deprecation: Deprecation?
        /// By name.
        public var variants: [Variant]

        public init(name: VersionName, createdAt: String, deprecation: Deprecation?, variants: [Variant]) {
            self.name = name
            self.createdAt = createdAt
            self.deprecation = deprecation
            self.variants = variants
        }
    }

    /// A variant is its manifest as stored; the rest of its summary is read from the manifest on import.
    public struct Variant: Codable, Sendable, Equatable {
        public var name: VariantName
        public var mediaType: String
        /// The manifest's bytes, base64 in JSON.
        public var manifest: Data
        public var createdAt: String
        public var createdBy: String
        /// The OCI artifact it was pushed as; absent for variants pushed otherwise (and in older exports).
        public var pushedArtifact: PushedArtifact?
        /// The manifests pushed with a subject of its artifact, oldest first; absent when none.
        public var referrers: [StoredReferrer]?

        public init(
            name: VariantName, document: ManifestDocument, createdAt: String, createdBy: String,
            pushedArtifact: PushedArtifact? = nil, referrers: [StoredReferrer] = []
        ) {
            self.name = name
            self.mediaType = document.mediaType
            self.manifest = Data(document.bytes)
            self.createdAt = createdAt
            self.createdBy = createdBy
            self.pushedArtifact = pushedArtifact
            self.referrers = referrers.isEmpty ? nil : referrers
        }

        public var document: ManifestDocument { ManifestDocument(bytes: [UInt8](manifest), mediaType: mediaType) }

        /// The files the manifest names, with the summary a store keeps of the variant.
        public func contents() throws(RegistryError) -> (manifest: Manifest, summary: VariantSummary) {
            guard mediaType == Manifest.mediaType else {
                throw RegistryError(
                    .invalidRequest,
                    "variant '\(name)' holds a manifest of type \(mediaType), which this modelreg cannot import: upgrade modelreg"
                )
            }
            let manifest = try Manifest.decode([UInt8](manifest))
            let summary = VariantSummary(
                name: name, digest: Digest.of([UInt8](self.manifest)), format: manifest.format,
                size: manifest.totalSize, fileCount: manifest.files.count, createdAt: createdAt, createdBy: createdBy)
            return (manifest, summary)
        }
    }

    public struct DeletedVersionName: Codable, Sendable, Equatable {
        public var name: VersionName
        public var deletedAt: String
        public var deletedBy: String

        public init(name: VersionName, deletedAt: String, deletedBy: String) {
            self.name = name
            self.deletedAt = deletedAt
            self.deletedBy = deletedBy
        }
    }

    /// A token as stored: the hash of its secret, never the secret.
    public struct Token: Codable, Sendable, Equatable {
        public var record: TokenRecord
        public var hash: String

        public init(record: TokenRecord, hash: String) {
            self.record = record
            self.hash = hash
        }
    }

    /// The blobs the manifests (their referrers, the archive layers of their pushed artifacts) name, each once with its size, by digest: what a backup
    /// must hold.
    public func referencedBlobs() throws(RegistryError) -> [BlobEntry] {
        var sizes: [Digest: Int64] = [:]
        for model in models {
            for version in model.versions {
                for variant in version.variants {
                    let files = try variant.contents().manifest.files
                    for file in files { sizes[file.digest] = file.size }
                    for layer in variant.pushedArtifact?.archiveLayers(besides: files) ?? [] {
                        sizes[layer.digest] = layer.size
                    }
                    for referrer in variant.referrers ?? [] {
                        for blob in referrer.blobs { sizes[blob.digest] = blob.size }
                    }
                }
            }
        }
        return sizes.sorted { $0.key < $1.key }.map { BlobEntry(digest: $0.key, size: $0.value) }
    }

    public var versionCount: Int { models.reduce(0) { $0 + $1.versions.count } }
    public var variantCount: Int { models.reduce(0) { $0 + $1.versions.reduce(0) { $0 + $1.variants.count } } }

    /// The bytes a backup stores: the same content gives the same bytes, so an unchanged registry's snapshots
    /// share one export blob.
    public func encoded() throws(RegistryError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(self))
        } catch {
            throw RegistryError(.internalError, "cannot encode the metadata export: \(error)")
        }
    }

    /// Reads an export, refusing a layout newer than this binary's.
    public static func decode(_ bytes: [UInt8], from source: String) throws(RegistryError) -> MetadataExport {
        struct Header: Decodable { var format: Int }
        let data = Data(bytes)
        guard let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw RegistryError(.integrity, "\(source) is not a modelreg metadata export")
        }
        guard header.format <= currentFormat else {
            throw RegistryError(
                .databaseTooNew,
                "\(source) is a metadata export of format \(header.format); this modelreg reads up to \(currentFormat): upgrade modelreg"
            )
        }
        do {
            return try JSONDecoder().decode(MetadataExport.self, from: data)
        } catch {
            throw RegistryError(.integrity, "\(source) is a damaged metadata export: \(error)")
        }
    }

    /// An import goes only into a store with no models, tokens or audit entries: merging two registries'
    /// histories is not something a restore should guess at.
    public static func requireEmpty(_ store: String, models: Int, tokens: Int, auditEntries: Int)
        throws(RegistryError)
    {
        guard models == 0, tokens == 0, auditEntries == 0 else {
            throw RegistryError(
                .conflict,
                "\(store) is not empty (\(models) models, \(tokens) tokens, \(auditEntries) audit entries): import into an empty registry"
            )
        }
    }
}
