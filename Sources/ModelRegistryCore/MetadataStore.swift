import Foundation

/// What the registry knows about models, versions, variants, aliases and tokens, one protocol a concern.
/// Implementations keep every write transactional: a reader never sees half a publish or half an alias move.
/// A backend implements all of them (`MetadataStore`) and passes the conformance suites in
/// StoreConformanceTests; code that needs one concern can take that protocol alone.
public protocol MetadataStore: CatalogStore, ReleaseStore, AuditLogStore, TokenStore, BlobReferenceStore,
    CacheImageRecordStore, MetadataExportStore, ReferrerStore, WebSessionStore
{
    /// Confirms the store is open and its schema is current.
    func checkReady() async throws
    /// Moves with every write transaction to `model` (a publish, alias move, deprecation or delete): an
    /// answer about the model read while it stayed the same is still current (see `ReadCache`). A backend
    /// that several processes write moves it for a write through any of them: at once, or as soon as the
    /// database announces the write; for its own writes, at once.
    func changeCount(of model: ModelName) async throws -> Int
    /// Moves after every write transaction of any kind, committed or not (see `KeptReadsMetadataStore`); a
    /// backend that other processes write too, and cannot tell of their writes this cheaply, moves it at
    /// every read, so nothing is kept.
    var changeCount: Int { get }
}

/// Models, versions and variants: the blobs manifests may name, publishing, and reading the catalogue.
public protocol CatalogStore: Sendable {
    /// Records blobs the blob store holds, with the time they were stored (a blob recorded already keeps the
    /// later of the two times): a manifest may name only recorded blobs, and garbage collection takes only
    /// blobs recorded before its grace period.
    func recordBlobs(_ blobs: [StoredBlob]) async throws
    /// Publishes a variant. Publishing identical content again is a no-op; other content for an existing
    /// version and variant is a conflict. Every file's blob must be recorded, with the size the manifest
    /// claims (`.blobsMissing`).
    func publish(_ request: PublishRequest) async throws -> PublishOutcome

    func listModels() async throws -> [ModelSummary]
    func model(_ name: ModelName) async throws -> ModelDetail?
    func version(_ name: ModelName, _ version: VersionName) async throws -> VersionSummary?
    func manifest(_ name: ModelName, _ version: VersionName, _ variant: VariantName) async throws -> StoredManifest?
    func manifest(_ name: ModelName, digest: Digest) async throws -> StoredManifest?
    /// Turns a release reference into exactly one variant manifest, reading one consistent snapshot. The
    /// variant is the one asked for, else the alias's variant, else the version's only variant, else its
    /// `default` variant. `@latest` is the newest version that is not deprecated.
    func resolve(_ reference: ModelReference, variant requested: VariantName?) async throws -> StoredManifest
}

/// Aliases and what happens to versions after they are published.
public protocol ReleaseStore: Sendable {
    /// A model's aliases by name; nil when the model does not exist.
    func aliases(_ name: ModelName) async throws -> [AliasTarget]?
    func alias(_ name: ModelName, _ alias: AliasName) async throws -> AliasTarget?
    /// Moves an alias in one transaction, recorded in its history and the audit log. With an expectation
    /// the move is a compare-and-swap.
    func moveAlias(_ move: AliasMove) async throws -> AliasTarget
    /// Every move of the alias, oldest first; nil when the model does not exist.
    func aliasHistory(_ name: ModelName, _ alias: AliasName) async throws -> [AliasHistoryEntry]?

    /// Flags a version as deprecated (again: the reason is updated). It stays pullable.
    func deprecate(_ name: ModelName, _ version: VersionName, reason: String?, actor: String) async throws
        -> VersionSummary
    /// Removes a version and its variants, and the cache image records of manifests no other variant of the
    /// model has; refused while an alias points to it. The name is never reused.
    func deleteVersion(_ name: ModelName, _ version: VersionName, actor: String) async throws -> DeletedVersion
}

/// Manifests pushed over the OCI API with a `subject` (signatures, attestations, SBOMs) of a variant's artifact:
/// kept byte for byte with that variant, listed by the referrers API, deleted with it; the blobs they name are
/// kept from garbage collection as a variant's files are.
public protocol ReferrerStore: Sendable {
    /// Keeps a referrer of the variant; keeping one already kept (by digest) is a no-op. Its blobs must be
    /// recorded (`.blobsMissing`), as a publish's must.
    func recordReferrer(
        _ referrer: StoredReferrer, of model: ModelName, _ version: VersionName, _ variant: VariantName
    ) async throws
    /// The model's referrers, oldest first; empty when the model does not exist.
    func referrers(_ model: ModelName) async throws -> [StoredReferrer]
}

/// A manifest that refers to another by its `subject`.
public struct StoredReferrer: Sendable, Equatable, Codable {
    /// The manifest as pushed, served under its digest.
    public var document: ManifestDocument
    /// The digest of the manifest it refers to.
    public var subject: Digest
    public var artifactType: String?
    /// Every blob it names (its config and layers).
    public var blobs: [BlobEntry]
    public var createdAt: String
    public var createdBy: String

    public init(
        document: ManifestDocument, subject: Digest, artifactType: String?, blobs: [BlobEntry], createdAt: String,
        createdBy: String
    ) {
        self.document = document
        self.subject = subject
        self.artifactType = artifactType
        self.blobs = blobs
        self.createdAt = createdAt
        self.createdBy = createdBy
    }

    /// Every blob it names must be known with its size, as `Manifest.requireBlobs` requires of files.
    public func requireBlobs(size: (Digest) throws -> Int64?) throws {
        var checked = Set<Digest>()
        try Manifest.requireBlobs(
            blobs.filter { checked.insert($0.digest).inserted }.map {
                ("\($0.digest) of the referrer \(document.digest)", $0.digest, $0.size)
            }, size: size)
    }

    private enum CodingKeys: String, CodingKey {
        case manifest, mediaType, subject, artifactType, blobs, createdAt, createdBy
    }

    /// The manifest's bytes base64 in JSON, as an export's manifests are.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        document = ManifestDocument(
            bytes: [UInt8](try container.decode(Data.self, forKey: .manifest)),
            mediaType: try container.decode(String.self, forKey: .mediaType))
        subject = try container.decode(Digest.self, forKey: .subject)
        artifactType = try container.decodeIfPresent(String.self, forKey: .artifactType)
        blobs = try container.decode([BlobEntry].self, forKey: .blobs)
        createdAt = try container.decode(String.self, forKey: .createdAt)
        createdBy = try container.decode(String.self, forKey: .createdBy)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Data(document.bytes), forKey: .manifest)
        try container.encode(document.mediaType, forKey: .mediaType)
        try container.encode(subject, forKey: .subject)
        try container.encodeIfPresent(artifactType, forKey: .artifactType)
        try container.encode(blobs, forKey: .blobs)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(createdBy, forKey: .createdBy)
    }
}

/// Every mutating request, written by the other concerns in the transaction of the change it records.
public protocol AuditLogStore: Sendable {
    /// Newest first.
    func auditLog(_ query: AuditQuery) async throws -> [AuditEntry]
}

/// What keeps blobs alive, for garbage collection: mark (`referencedBlobs`), then claim, then delete from the
/// blob store. A claim takes the blob's record in the same transaction that finds it unreferenced, and a
/// publish requires its blobs' records in its own, so a blob is either kept by a manifest committed first or
/// claimed first and refused to the publish: correct on any backend whose transactions serialize those two.
public protocol BlobReferenceStore: Sendable {
    /// Every digest a published manifest names.
    func referencedBlobs() async throws -> Set<Digest>
    /// In one transaction, drops the record of each candidate that no manifest names and that was recorded
    /// before `cutoff` (or is not recorded at all), and returns those: no publish can name them from then on,
    /// and the caller deletes them from the blob store.
    func claimUnreferencedBlobs(_ candidates: [Digest], recordedBefore cutoff: Date) async throws -> [Digest]
}

/// What the cache image builder learned of each image. Derived data: rebuilt when missing, never exported.
/// Records are kept per model and manifest digest, as images are addressed, and go with the model's last
/// variant that has the manifest (`deleteVersion`).
public protocol CacheImageRecordStore: Sendable {
    /// The records of the manifest's images, by layout.
    func cacheImageRecords(_ model: ModelName, _ manifest: Digest) async throws -> [String: CacheImageRecord]
    /// Keeps the record of one layout's image; nothing is kept when no variant of the model has the manifest
    /// (its version was deleted while the image was built).
    func recordCacheImage(_ record: CacheImageRecord, _ model: ModelName, _ manifest: Digest, layout: String)
        async throws
}

public struct CacheImageRecord: Codable, Sendable, Equatable {
    /// The archive's digest; nil when the build failed.
    public var digest: Digest?
    public var size: Int64
    public var builtAt: String
    public var error: String?

    public init(digest: Digest?, size: Int64, builtAt: String, error: String? = nil) {
        self.digest = digest
        self.size = size
        self.builtAt = builtAt
        self.error = error
    }
}

/// The whole store as one document and back: what backups take and restores put back, on any backend.
public protocol MetadataExportStore: Sendable {
    /// Everything but the blob records, read in one transaction.
    func exportMetadata() async throws -> MetadataExport
    /// Fills a store that holds no models, tokens or audit entries, in one transaction, keeping every time,
    /// actor and id. Every manifest's blobs must be recorded first, as for a publish (`.blobsMissing`).
    func importMetadata(_ export: MetadataExport) async throws
}

/// API tokens, kept as hashes of their secrets.
public protocol TokenStore: Sendable {
    func hasTokens() async throws -> Bool
    func createToken(name: TokenLabel, scope: TokenScope, secret: TokenSecret, actor: String) async throws
        -> TokenRecord
    /// Makes `secret` an active admin token named `name`, for a token kept outside the registry (a
    /// Kubernetes Secret). Unknown: added, replacing an active token of that name (the Secret was rotated).
    /// Already active as admin: nothing changes. Revoked, or known with a lesser scope: refused, since
    /// re-enabling it from a file would undo a revocation. Returns whether the token was added.
    func installAdminToken(name: TokenLabel, secret: TokenSecret, actor: String) async throws -> Bool
    /// The active (not revoked) token whose secret hashes to `hash`.
    func token(hash: String) async throws -> TokenRecord?
    func tokens() async throws -> [TokenRecord]
    func revokeToken(name: TokenLabel, actor: String) async throws -> TokenRecord
}

extension CatalogStore {
    /// Records a blob stored just now.
    public func recordBlob(_ blob: BlobInfo) async throws {
        try await recordBlobs([StoredBlob(digest: blob.digest, size: blob.size, stored: Date())])
    }
}

public struct PublishRequest: Sendable {
    public var model: ModelName
    public var version: VersionName
    public var variant: VariantName
    /// What the manifest says, decoded: the files the store indexes.
    public var manifest: Manifest
    /// The manifest as it is stored and served.
    public var document: ManifestDocument
    /// The OCI artifact the variant was pushed as, kept with it.
    public var pushedArtifact: PushedArtifact?
    public var actor: String

    /// `document` defaults to this registry's canonical form of `manifest`.
    public init(
        model: ModelName, version: VersionName, variant: VariantName, manifest: Manifest,
        document: ManifestDocument? = nil, pushedArtifact: PushedArtifact? = nil, actor: String
    ) {
        self.model = model
        self.version = version
        self.variant = variant
        self.manifest = manifest
        self.document = document ?? ManifestDocument(canonical: manifest)
        self.pushedArtifact = pushedArtifact
        self.actor = actor
    }
}

/// The OCI artifact a variant was pushed as over the OCI API (`oras push`, `skopeo copy`): its manifest and
/// config as the client wrote them, so they are served under `/v2/` byte for byte, with the digest the client
/// computed, in place of the artifact the registry writes for a variant. Small documents, kept with the variant
/// (never as blobs, which garbage collection would take).
public struct PushedArtifact: Sendable, Equatable, Codable {
    public var manifest: ManifestDocument
    public var config: ManifestDocument

    public init(manifest: ManifestDocument, config: ManifestDocument) {
        self.manifest = manifest
        self.config = config
    }

    private enum CodingKeys: String, CodingKey {
        case manifest, manifestMediaType, config, configMediaType
    }

    /// The documents' bytes base64 in JSON, as an export's manifests are.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        manifest = ManifestDocument(
            bytes: [UInt8](try container.decode(Data.self, forKey: .manifest)),
            mediaType: try container.decode(String.self, forKey: .manifestMediaType))
        config = ManifestDocument(
            bytes: [UInt8](try container.decode(Data.self, forKey: .config)),
            mediaType: try container.decode(String.self, forKey: .configMediaType))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Data(manifest.bytes), forKey: .manifest)
        try container.encode(manifest.mediaType, forKey: .manifestMediaType)
        try container.encode(Data(config.bytes), forKey: .config)
        try container.encode(config.mediaType, forKey: .configMediaType)
    }

    /// The layers its manifest names that are not among `files`: the tar archives a ModelPack artifact with
    /// archive layers or a KitOps ModelKit was pushed with, whose files the variant holds unpacked. A store keeps
    /// them from garbage collection (and a backup holds them) while the variant is there, so the artifact is
    /// served as pushed.
    public func archiveLayers(besides files: [ManifestFile]) -> [BlobEntry] {
        struct Layers: Decodable {
            struct Layer: Decodable {
                let digest: String
                let size: Int64
            }
            let layers: [Layer]?
        }
        let held = Set(files.map(\.digest))
        let layers = (try? JSONDecoder().decode(Layers.self, from: Data(manifest.bytes)))?.layers ?? []
        return Array(
            Set(
                layers.compactMap { layer in
                    (try? Digest(parsing: layer.digest)).map { BlobEntry(digest: $0, size: layer.size) }
                }.filter { !held.contains($0.digest) })
        ).sorted()
    }
}

/// A manifest as bytes: stored exactly as given, named by their digest, served with their media type.
public struct ManifestDocument: Sendable, Equatable {
    public var bytes: [UInt8]
    public var digest: Digest
    public var mediaType: String

    public init(bytes: [UInt8], mediaType: String) {
        self.bytes = bytes
        self.digest = Digest.of(bytes)
        self.mediaType = mediaType
    }

    /// This registry's own manifest in its canonical JSON.
    public init(canonical manifest: Manifest) {
        self.init(bytes: manifest.canonicalJSON(), mediaType: Manifest.mediaType)
    }
}

public enum PublishOutcome: Sendable, Equatable {
    case created(VariantSummary)
    case unchanged(VariantSummary)

    public var variant: VariantSummary {
        switch self {
        case .created(let summary), .unchanged(let summary): summary
        }
    }
}

public struct VariantSummary: Codable, Sendable, Equatable {
    public var name: VariantName
    public var digest: Digest
    public var format: ModelFormat
    public var size: Int64
    public var fileCount: Int
    public var createdAt: String
    public var createdBy: String

    public init(
        name: VariantName, digest: Digest, format: ModelFormat, size: Int64, fileCount: Int, createdAt: String,
        createdBy: String
    ) {
        self.name = name
        self.digest = digest
        self.format = format
        self.size = size
        self.fileCount = fileCount
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

public struct VersionSummary: Codable, Sendable, Equatable {
    public var name: VersionName
    public var createdAt: String
    /// The bytes of all its variants' files.
    public var size: Int64
    public var variants: [VariantSummary]
    public var aliases: [AliasName]
    public var deprecation: Deprecation?

    public init(
        name: VersionName, createdAt: String, size: Int64, variants: [VariantSummary], aliases: [AliasName],
        deprecation: Deprecation? = nil
    ) {
        self.name = name
        self.createdAt = createdAt
        self.size = size
        self.variants = variants
        self.aliases = aliases
        self.deprecation = deprecation
    }
}

public struct AliasTarget: Codable, Sendable, Equatable {
    public var name: AliasName
    public var version: VersionName
    public var variant: VariantName?
    public var updatedAt: String
    public var updatedBy: String

    public init(
        name: AliasName, version: VersionName, variant: VariantName? = nil, updatedAt: String, updatedBy: String
    ) {
        self.name = name
        self.version = version
        self.variant = variant
        self.updatedAt = updatedAt
        self.updatedBy = updatedBy
    }
}

public struct ModelSummary: Codable, Sendable, Equatable {
    public var name: ModelName
    public var createdAt: String
    public var versionCount: Int
    /// What `@latest` resolves to: the newest version that is not deprecated.
    public var latestVersion: VersionName?
    public var size: Int64
    public var aliases: [AliasTarget]

    public init(
        name: ModelName, createdAt: String, versionCount: Int, latestVersion: VersionName? = nil, size: Int64,
        aliases: [AliasTarget]
    ) {
        self.name = name
        self.createdAt = createdAt
        self.versionCount = versionCount
        self.latestVersion = latestVersion
        self.size = size
        self.aliases = aliases
    }
}

public struct ModelDetail: Codable, Sendable, Equatable {
    public var name: ModelName
    public var createdAt: String
    /// Newest first.
    public var versions: [VersionSummary]
    public var aliases: [AliasTarget]

    public init(name: ModelName, createdAt: String, versions: [VersionSummary], aliases: [AliasTarget]) {
        self.name = name
        self.createdAt = createdAt
        self.versions = versions
        self.aliases = aliases
    }
}

/// A manifest as stored: its exact bytes, their media type, and where it was published.
public struct StoredManifest: Sendable, Equatable {
    public var model: ModelName
    public var version: VersionName
    public var variant: VariantName
    public var digest: Digest
    public var bytes: [UInt8]
    public var mediaType: String
    /// Set when its version is deprecated; the manifest is still served.
    public var deprecation: Deprecation?
    /// The OCI artifact the variant was pushed as, if it was pushed over the OCI API.
    public var pushedArtifact: PushedArtifact?

    public init(
        model: ModelName, version: VersionName, variant: VariantName, digest: Digest, bytes: [UInt8],
        mediaType: String = Manifest.mediaType, deprecation: Deprecation? = nil, pushedArtifact: PushedArtifact? = nil
    ) {
        self.model = model
        self.version = version
        self.variant = variant
        self.digest = digest
        self.bytes = bytes
        self.mediaType = mediaType
        self.deprecation = deprecation
        self.pushedArtifact = pushedArtifact
    }

    public func decoded() throws -> Manifest { try Manifest.decode(bytes) }
}

public struct TokenRecord: Codable, Sendable, Equatable {
    public var name: TokenLabel
    public var scope: TokenScope
    public var createdAt: String
    public var revokedAt: String?

    public init(name: TokenLabel, scope: TokenScope, createdAt: String, revokedAt: String? = nil) {
        self.name = name
        self.scope = scope
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}
