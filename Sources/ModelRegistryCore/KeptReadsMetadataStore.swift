import Foundation

/// Any metadata store with the answers it is asked for most kept until they may have changed: the token
/// lookup every authenticated request makes. An answer is kept under the store's change count taken before
/// the read (`ReadCache`), so the backend's change signal decides when it goes stale: for SQLite the count of
/// this process's writes; for a backend written by several processes one that keeps nothing.
public final class KeptReadsMetadataStore: MetadataStore {
    public let base: any MetadataStore
    private let tokens = ReadCache<String, TokenRecord>(limit: 1024)

    public init(_ base: any MetadataStore) {
        self.base = base
    }

    public func token(hash: String) async throws -> TokenRecord? {
        let changeCount = base.changeCount
        if let kept = tokens.value(for: hash, at: changeCount) { return kept }
        let record = try await base.token(hash: hash)
        // Only tokens that exist: requests with ever new invalid tokens must not fill the cache.
        if let record { tokens.insert(record, for: hash, readAt: changeCount) }
        return record
    }

    public var changeCount: Int { base.changeCount }
    public func changeCount(of model: ModelName) async throws -> Int { try await base.changeCount(of: model) }
    public func checkReady() async throws { try await base.checkReady() }

    public func recordBlobs(_ blobs: [StoredBlob]) async throws { try await base.recordBlobs(blobs) }
    public func publish(_ request: PublishRequest) async throws -> PublishOutcome { try await base.publish(request) }
    public func listModels() async throws -> [ModelSummary] { try await base.listModels() }
    public func model(_ name: ModelName) async throws -> ModelDetail? { try await base.model(name) }
    public func version(_ name: ModelName, _ version: VersionName) async throws -> VersionSummary? {
        try await base.version(name, version)
    }
    public func manifest(_ name: ModelName, _ version: VersionName, _ variant: VariantName) async throws
        -> StoredManifest?
    {
        try await base.manifest(name, version, variant)
    }
    public func manifest(_ name: ModelName, digest: Digest) async throws -> StoredManifest? {
        try await base.manifest(name, digest: digest)
    }
    public func resolve(_ reference: ModelReference, variant requested: VariantName?) async throws -> StoredManifest {
        try await base.resolve(reference, variant: requested)
    }

    public func aliases(_ name: ModelName) async throws -> [AliasTarget]? { try await base.aliases(name) }
    public func alias(_ name: ModelName, _ alias: AliasName) async throws -> AliasTarget? {
        try await base.alias(name, alias)
    }
    public func moveAlias(_ move: AliasMove) async throws -> AliasTarget { try await base.moveAlias(move) }
    public func aliasHistory(_ name: ModelName, _ alias: AliasName) async throws -> [AliasHistoryEntry]? {
        try await base.aliasHistory(name, alias)
    }
    public func deprecate(_ name: ModelName, _ version: VersionName, reason: String?, actor: String) async throws
        -> VersionSummary
    {
        try await base.deprecate(name, version, reason: reason, actor: actor)
    }
    public func deleteVersion(_ name: ModelName, _ version: VersionName, actor: String) async throws -> DeletedVersion {
        try await base.deleteVersion(name, version, actor: actor)
    }

    public func auditLog(_ query: AuditQuery) async throws -> [AuditEntry] { try await base.auditLog(query) }

    public func hasTokens() async throws -> Bool { try await base.hasTokens() }
    public func createToken(name: TokenLabel, scope: TokenScope, secret: TokenSecret, actor: String) async throws
        -> TokenRecord
    {
        try await base.createToken(name: name, scope: scope, secret: secret, actor: actor)
    }
    public func installAdminToken(name: TokenLabel, secret: TokenSecret, actor: String) async throws -> Bool {
        try await base.installAdminToken(name: name, secret: secret, actor: actor)
    }
    public func tokens() async throws -> [TokenRecord] { try await base.tokens() }
    public func revokeToken(name: TokenLabel, actor: String) async throws -> TokenRecord {
        try await base.revokeToken(name: name, actor: actor)
    }

    public func createWebSession(_ session: WebSession, now: Date) async throws {
        try await base.createWebSession(session, now: now)
    }
    public func webSession(idHash: String, now: Date) async throws -> WebSession? {
        try await base.webSession(idHash: idHash, now: now)
    }
    public func deleteWebSession(idHash: String) async throws { try await base.deleteWebSession(idHash: idHash) }

    public func referencedBlobs() async throws -> Set<Digest> { try await base.referencedBlobs() }
    public func claimUnreferencedBlobs(_ candidates: [Digest], recordedBefore cutoff: Date) async throws -> [Digest] {
        try await base.claimUnreferencedBlobs(candidates, recordedBefore: cutoff)
    }

    public func cacheImageRecords(_ model: ModelName, _ manifest: Digest) async throws -> [String: CacheImageRecord] {
        try await base.cacheImageRecords(model, manifest)
    }
    public func recordCacheImage(_ record: CacheImageRecord, _ model: ModelName, _ manifest: Digest, layout: String)
        async throws
    {
        try await base.recordCacheImage(record, model, manifest, layout: layout)
    }

    public func recordReferrer(
        _ referrer: StoredReferrer, of model: ModelName, _ version: VersionName, _ variant: VariantName
    ) async throws {
        try await base.recordReferrer(referrer, of: model, version, variant)
    }
    public func referrers(_ model: ModelName) async throws -> [StoredReferrer] { try await base.referrers(model) }

    public func exportMetadata() async throws -> MetadataExport { try await base.exportMetadata() }
    public func importMetadata(_ export: MetadataExport) async throws { try await base.importMetadata(export) }
}
