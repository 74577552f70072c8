import Foundation
import ModelRegistryCore
import Synchronization

/// Models, releases, tokens and the audit log held in memory: the reference backend of the `MetadataStore`
/// conformance suite. Every operation runs under one lock, as a transaction; the decisions are
/// `ReleaseRules`', as in every backend. Instances made with the same `Storage` share it.
public final class InMemoryMetadataStore: MetadataStore {
    public final class Storage: Sendable {
        fileprivate let state = Mutex(State())

        public init() {}
    }

    fileprivate struct State {
        var models: [ModelName: Model] = [:]
        var blobs: [Digest: (size: Int64, stored: Date)] = [:]
        var tokens: [Token] = []
        var webSessions: [String: WebSession] = [:]
        var cacheImages: [CacheImageKey: CacheImageRecord] = [:]
        var audit: [AuditEntry] = []
        var lastID: Int64 = 0
        var changes = 0
        var modelChanges: [ModelName: Int] = [:]

        mutating func nextID() -> Int64 {
            lastID += 1
            return lastID
        }

        mutating func record(
            _ actor: String, _ action: AuditEntry.Action, _ model: ModelName?, target: String, detail: String?
        ) {
            audit.append(
                AuditEntry(
                    id: nextID(), at: Timestamp.now(), actor: actor, action: action, model: model, target: target,
                    detail: detail))
        }

        /// Every digest a manifest names.
        var referenced: Set<Digest> {
            Set(
                models.values.flatMap {
                    $0.versions.flatMap {
                        $0.variants.flatMap { $0.blobs + $0.referrers.flatMap { $0.blobs.map(\.digest) } }
                    }
                })
        }

        func model(_ name: ModelName) throws(RegistryError) -> Model {
            guard let model = models[name] else { throw RegistryError.notFound("model \(name)") }
            return model
        }
    }

    fileprivate struct Model {
        var createdAt: String
        /// Oldest first.
        var versions: [Version] = []
        var aliases: [AliasName: AliasTarget] = [:]
        var history: [AliasName: [AliasHistoryEntry]] = [:]
        var deleted: [VersionName: MetadataExport.DeletedVersionName] = [:]

        func version(_ name: VersionName) -> Version? { versions.first { $0.name == name } }

        /// Where the version is; a deleted one is named so, as the others are not found.
        func index(of version: VersionName, in model: ModelName) throws(RegistryError) -> Int {
            if let index = versions.firstIndex(where: { $0.name == version }) { return index }
            if let deleted = deleted[version] {
                throw RegistryError.deletedVersion(model, version, at: deleted.deletedAt)
            }
            throw RegistryError.notFound("version \(model):\(version)")
        }

        var aliasList: [AliasTarget] { aliases.values.sorted { $0.name.value < $1.name.value } }
    }

    fileprivate struct Version {
        var name: VersionName
        var createdAt: String
        /// In name order.
        var variants: [Variant] = []
        var deprecation: Deprecation?

        func summary(aliases: [AliasTarget]) -> VersionSummary {
            VersionSummary(
                name: name, createdAt: createdAt, size: variants.reduce(0) { $0 + $1.summary.size },
                variants: variants.map(\.summary), aliases: aliases.filter { $0.version == name }.map(\.name),
                deprecation: deprecation)
        }
    }

    fileprivate struct Variant {
        var summary: VariantSummary
        var document: ManifestDocument
        /// The blobs its manifest names, and the archive layers of the artifact it was pushed as.
        var blobs: [Digest]
        var pushedArtifact: PushedArtifact?
        var referrers: [StoredReferrer] = []
    }

    fileprivate struct CacheImageKey: Hashable {
        var model: ModelName
        var manifest: Digest
        var layout: String
    }

    fileprivate struct Token {
        var record: TokenRecord
        var hash: String
    }

    private let storage: Storage

    public init(storage: Storage = Storage()) {
        self.storage = storage
    }

    /// Runs `body` as one transaction; a write to `model` moves its change count, as every write moves the
    /// total, committed or not.
    private func writing<T>(to model: ModelName? = nil, _ body: (inout State) throws -> T) throws -> T {
        try writing(toModels: model.map { [$0] } ?? [], body)
    }

    private func writing<T>(toModels models: [ModelName], _ body: (inout State) throws -> T) throws -> T {
        try storage.state.withLock { state in
            defer {
                state.changes += 1
                for model in models { state.modelChanges[model] = state.changes }
            }
            var draft = state
            let result = try body(&draft)
            draft.changes = state.changes
            draft.modelChanges = state.modelChanges
            state = draft
            return result
        }
    }

    private func reading<T>(_ body: (State) throws -> T) throws -> T {
        try storage.state.withLock { state in try body(state) }
    }

    public func checkReady() async throws {}

    public var changeCount: Int { storage.state.withLock { $0.changes } }

    public func changeCount(of model: ModelName) async throws -> Int {
        storage.state.withLock { $0.modelChanges[model] ?? 0 }
    }

    public func recordBlobs(_ blobs: [StoredBlob]) async throws {
        try writing { state in
            for blob in blobs {
                let stored = max(blob.stored, state.blobs[blob.digest]?.stored ?? blob.stored)
                state.blobs[blob.digest] = (blob.size, stored)
            }
        }
    }

    public func recordReferrer(
        _ referrer: StoredReferrer, of name: ModelName, _ version: VersionName, _ variant: VariantName
    ) async throws {
        try writing(to: name) { state in
            var model = try state.model(name)
            guard let v = model.versions.firstIndex(where: { $0.name == version }),
                let i = model.versions[v].variants.firstIndex(where: { $0.summary.name == variant })
            else {
                throw RegistryError(.notFound, "\(name):\(version) has no variant \(variant)")
            }
            guard !model.versions[v].variants[i].referrers.contains(where: { $0.document == referrer.document }) else {
                return
            }
            let recorded = state.blobs
            try referrer.requireBlobs { recorded[$0]?.size }
            model.versions[v].variants[i].referrers.append(referrer)
            state.models[name] = model
        }
    }

    public func referrers(_ name: ModelName) async throws -> [StoredReferrer] {
        try reading { state in
            (state.models[name]?.versions ?? []).flatMap { $0.variants.flatMap(\.referrers) }
                .sorted { $0.createdAt < $1.createdAt }
        }
    }

    public func referencedBlobs() async throws -> Set<Digest> {
        try reading { state in state.referenced }
    }

    public func claimUnreferencedBlobs(_ candidates: [Digest], recordedBefore cutoff: Date) async throws -> [Digest] {
        try writing { state in
            let referenced = state.referenced
            return candidates.filter { digest in
                guard !referenced.contains(digest) else { return false }
                if let recorded = state.blobs[digest] {
                    guard recorded.stored < cutoff else { return false }
                    state.blobs.removeValue(forKey: digest)
                }
                return true
            }
        }
    }

    public func publish(_ request: PublishRequest) async throws -> PublishOutcome {
        let document = request.document
        let digest = document.digest
        return try writing(to: request.model) { state in
            var model = state.models[request.model] ?? Model(createdAt: Timestamp.now())
            var index = model.versions.firstIndex { $0.name == request.version }
            if index == nil {
                if let deleted = model.deleted[request.version] {
                    throw RegistryError.deletedVersion(request.model, request.version, at: deleted.deletedAt)
                }
                model.versions.append(Version(name: request.version, createdAt: Timestamp.now()))
                index = model.versions.count - 1
            }
            guard let index else { throw RegistryError(.internalError, "no version to publish into") }
            if let existing = model.versions[index].variants.first(where: { $0.summary.name == request.variant }) {
                guard existing.summary.digest == digest else {
                    throw RegistryError.alreadyPublished(
                        request.model, request.version, request.variant, as: existing.summary.digest)
                }
                return .unchanged(existing.summary)
            }
            let recorded = state.blobs
            let archiveLayers = request.pushedArtifact?.archiveLayers(besides: request.manifest.files) ?? []
            try request.manifest.requireBlobs(archiveLayers: archiveLayers) { recorded[$0]?.size }
            let summary = VariantSummary(
                name: request.variant, digest: digest, format: request.manifest.format,
                size: request.manifest.totalSize, fileCount: request.manifest.files.count, createdAt: Timestamp.now(),
                createdBy: request.actor)
            model.versions[index].variants.append(
                Variant(
                    summary: summary, document: document,
                    blobs: (request.manifest.files.map(\.digest) + archiveLayers.map(\.digest)),
                    pushedArtifact: request.pushedArtifact))
            model.versions[index].variants.sort { $0.summary.name.value < $1.summary.name.value }
            state.models[request.model] = model
            state.record(
                request.actor, .publish, request.model, target: "\(request.model):\(request.version)",
                detail: "variant \(request.variant) \(digest)")
            return .created(summary)
        }
    }

    public func listModels() async throws -> [ModelSummary] {
        try reading { state in
            state.models.sorted { $0.key.value < $1.key.value }.map { name, model in
                ModelSummary(
                    name: name, createdAt: model.createdAt, versionCount: model.versions.count,
                    latestVersion: model.versions.last { $0.deprecation == nil }?.name,
                    size: model.versions.reduce(0) { $0 + $1.variants.reduce(0) { $0 + $1.summary.size } },
                    aliases: model.aliasList)
            }
        }
    }

    public func model(_ name: ModelName) async throws -> ModelDetail? {
        try reading { state in
            state.models[name].map { model in
                let aliases = model.aliasList
                return ModelDetail(
                    name: name, createdAt: model.createdAt,
                    versions: model.versions.reversed().map { $0.summary(aliases: aliases) }, aliases: aliases)
            }
        }
    }

    public func version(_ name: ModelName, _ version: VersionName) async throws -> VersionSummary? {
        try reading { state in
            guard let model = state.models[name] else { return nil }
            return model.version(version)?.summary(aliases: model.aliasList)
        }
    }

    public func manifest(_ name: ModelName, _ version: VersionName, _ variant: VariantName) async throws
        -> StoredManifest?
    {
        try reading { state in
            Self.stored(name, state.models[name]) { $0.name == version && $1.summary.name == variant }
        }
    }

    public func manifest(_ name: ModelName, digest: Digest) async throws -> StoredManifest? {
        try reading { state in Self.stored(name, state.models[name]) { $1.summary.digest == digest } }
    }

    private static func stored(_ name: ModelName, _ model: Model?, where matches: (Version, Variant) -> Bool)
        -> StoredManifest?
    {
        for version in model?.versions ?? [] {
            for variant in version.variants where matches(version, variant) {
                return StoredManifest(
                    model: name, version: version.name, variant: variant.summary.name, digest: variant.summary.digest,
                    bytes: variant.document.bytes, mediaType: variant.document.mediaType,
                    deprecation: version.deprecation, pushedArtifact: variant.pushedArtifact)
            }
        }
        return nil
    }

    public func resolve(_ reference: ModelReference, variant requested: VariantName?) async throws -> StoredManifest {
        try ReleaseRules.checkResolvable(reference, variant: requested)
        return try reading { state in
            let name = reference.name
            let model = try state.model(name)
            let version: VersionName
            var pinned: VariantName?
            switch reference.target {
            case .model:
                throw RegistryError(.internalError, "\(reference) passed the check of resolvable references")
            case .digest(let digest):
                guard let stored = Self.stored(name, model, where: { $1.summary.digest == digest }) else {
                    throw RegistryError.notFound("manifest \(reference)")
                }
                return stored
            case .version(let named):
                version = named
            case .alias(let alias) where alias == .latest:
                guard let newest = model.versions.last(where: { $0.deprecation == nil }) else {
                    throw RegistryError.notFound("\(reference) (every version of \(name) is deprecated or deleted)")
                }
                version = newest.name
            case .alias(let alias):
                guard let target = model.aliases[alias] else {
                    throw RegistryError.notFound("alias '\(alias)' of model \(name)")
                }
                version = target.version
                pinned = target.variant
            }
            guard let found = model.version(version) else { throw RegistryError.notFound("version \(name):\(version)") }
            let chosen = try ReleaseRules.chooseVariant(
                requested ?? pinned, among: found.variants.map(\.summary.name), of: name, version, shownAs: reference)
            guard let stored = Self.stored(name, model, where: { $0.name == version && $1.summary.name == chosen })
            else {
                throw RegistryError.notFound("variant '\(chosen)' of \(name):\(version)")
            }
            return stored
        }
    }

    public func aliases(_ name: ModelName) async throws -> [AliasTarget]? {
        try reading { $0.models[name]?.aliasList }
    }

    public func alias(_ name: ModelName, _ alias: AliasName) async throws -> AliasTarget? {
        try reading { $0.models[name]?.aliases[alias] }
    }

    public func moveAlias(_ move: AliasMove) async throws -> AliasTarget {
        try ReleaseRules.checkMovable(move)
        return try writing(to: move.model) { state in
            var model = try state.model(move.model)
            let current = model.aliases[move.alias]
            try ReleaseRules.checkExpectation(of: move, current: current)
            let destination = try ReleaseRules.destination(of: move, current: current, aliases: model.aliasList) {
                model.history[move.alias] ?? []
            }
            let target = destination.target
            let version = model.versions[try model.index(of: target.version, in: move.model)]
            if let variant = target.variant, !version.variants.contains(where: { $0.summary.name == variant }) {
                throw RegistryError.notFound("variant '\(variant)' of \(move.model):\(target.version)")
            }
            if let current, current.version == target.version, current.variant == target.variant { return current }
            let now = Timestamp.now()
            let moved = AliasTarget(
                name: move.alias, version: target.version, variant: target.variant, updatedAt: now,
                updatedBy: move.actor)
            model.aliases[move.alias] = moved
            model.history[move.alias, default: []].append(
                AliasHistoryEntry(
                    id: state.nextID(), alias: move.alias, action: destination.action, fromVersion: current?.version,
                    fromVariant: current?.variant, toVersion: target.version, toVariant: target.variant,
                    actor: move.actor, at: now))
            state.models[move.model] = model
            state.record(
                move.actor, destination.auditAction, move.model, target: "\(move.model)@\(move.alias)",
                detail: ReleaseRules.moveDetail(from: current, to: destination))
            return moved
        }
    }

    public func aliasHistory(_ name: ModelName, _ alias: AliasName) async throws -> [AliasHistoryEntry]? {
        try reading { state in state.models[name].map { $0.history[alias] ?? [] } }
    }

    public func deprecate(_ name: ModelName, _ version: VersionName, reason: String?, actor: String) async throws
        -> VersionSummary
    {
        try writing(to: name) { state in
            var model = try state.model(name)
            let index = try model.index(of: version, in: name)
            let since = model.versions[index].deprecation?.at ?? Timestamp.now()
            model.versions[index].deprecation = Deprecation(at: since, by: actor, reason: reason)
            state.models[name] = model
            state.record(actor, .deprecate, name, target: "\(name):\(version)", detail: reason)
            return model.versions[index].summary(aliases: model.aliasList)
        }
    }

    public func deleteVersion(_ name: ModelName, _ version: VersionName, actor: String) async throws -> DeletedVersion {
        try writing(to: name) { state in
            var model = try state.model(name)
            let index = try model.index(of: version, in: name)
            try ReleaseRules.checkDeletable(name, version, aliases: model.aliasList)
            let summary = model.versions.remove(at: index).summary(aliases: [])
            let now = Timestamp.now()
            model.deleted[version] = MetadataExport.DeletedVersionName(name: version, deletedAt: now, deletedBy: actor)
            state.models[name] = model
            let manifests = Set(model.versions.flatMap { $0.variants.map(\.summary.digest) })
            state.cacheImages = state.cacheImages.filter { $0.key.model != name || manifests.contains($0.key.manifest) }
            let variants = summary.variants.map(\.name)
            state.record(
                actor, .delete, name, target: "\(name):\(version)",
                detail: "variants \(variants.map(\.value).joined(separator: ", ")); \(summary.size) bytes")
            return DeletedVersion(
                model: name, version: version, variants: variants, manifests: summary.variants.map(\.digest),
                size: summary.size, deletedAt: now)
        }
    }

    public func auditLog(_ query: AuditQuery) async throws -> [AuditEntry] {
        try reading { state in
            Array(
                state.audit.reversed().lazy.filter { entry in
                    (query.model == nil || entry.model == query.model) && (query.before.map { entry.id < $0 } ?? true)
                }.prefix(query.limit))
        }
    }

    public func cacheImageRecords(_ model: ModelName, _ manifest: Digest) async throws -> [String: CacheImageRecord] {
        try reading { state in
            var records: [String: CacheImageRecord] = [:]
            for (key, record) in state.cacheImages where key.model == model && key.manifest == manifest {
                records[key.layout] = record
            }
            return records
        }
    }

    public func recordCacheImage(_ record: CacheImageRecord, _ model: ModelName, _ manifest: Digest, layout: String)
        async throws
    {
        try writing { state in
            guard Self.stored(model, state.models[model], where: { $1.summary.digest == manifest }) != nil else {
                return
            }
            state.cacheImages[CacheImageKey(model: model, manifest: manifest, layout: layout)] = record
        }
    }

    public func exportMetadata() async throws -> MetadataExport {
        try reading { state in
            let models = state.models.sorted { $0.key.value < $1.key.value }.map { name, model in
                MetadataExport.Model(
                    name: name, createdAt: model.createdAt,
                    versions: model.versions.map { version in
                        MetadataExport.Version(
                            name: version.name, createdAt: version.createdAt, deprecation: version.deprecation,
                            variants: version.variants.map {
                                MetadataExport.Variant(
                                    name: $0.summary.name, document: $0.document, createdAt: $0.summary.createdAt,
                                    createdBy: $0.summary.createdBy, pushedArtifact: $0.pushedArtifact,
                                    referrers: $0.referrers)
                            })
                    },
                    aliases: model.aliasList, history: model.history.values.joined().sorted { $0.id < $1.id },
                    deletedVersions: model.deleted.values.sorted { $0.name.value < $1.name.value })
            }
            return MetadataExport(
                models: models, tokens: state.tokens.map { MetadataExport.Token(record: $0.record, hash: $0.hash) },
                audit: state.audit)
        }
    }

    public func importMetadata(_ export: MetadataExport) async throws {
        try writing(toModels: export.models.map(\.name)) { state in
            try MetadataExport.requireEmpty(
                "the in-memory store", models: state.models.count, tokens: state.tokens.count,
                auditEntries: state.audit.count)
            for exported in export.models {
                var model = Model(createdAt: exported.createdAt)
                for version in exported.versions {
                    var imported = Version(
                        name: version.name, createdAt: version.createdAt, deprecation: version.deprecation)
                    for variant in version.variants {
                        let (manifest, summary) = try variant.contents()
                        let recorded = state.blobs
                        let archiveLayers = variant.pushedArtifact?.archiveLayers(besides: manifest.files) ?? []
                        try manifest.requireBlobs(archiveLayers: archiveLayers) { recorded[$0]?.size }
                        imported.variants.append(
                            Variant(
                                summary: summary, document: variant.document,
                                blobs: manifest.files.map(\.digest) + archiveLayers.map(\.digest),
                                pushedArtifact: variant.pushedArtifact))
                        for referrer in variant.referrers ?? [] {
                            try referrer.requireBlobs { recorded[$0]?.size }
                            imported.variants[imported.variants.count - 1].referrers.append(referrer)
                        }
                    }
                    model.versions.append(imported)
                }
                for alias in exported.aliases {
                    guard model.version(alias.version) != nil else {
                        throw RegistryError(
                            .integrity,
                            "the export's alias \(exported.name)@\(alias.name) points to version \(alias.version), which it does not hold"
                        )
                    }
                    model.aliases[alias.name] = alias
                }
                for entry in exported.history { model.history[entry.alias, default: []].append(entry) }
                for deleted in exported.deletedVersions { model.deleted[deleted.name] = deleted }
                state.models[exported.name] = model
            }
            state.tokens = export.tokens.map { Token(record: $0.record, hash: $0.hash) }
            state.audit = export.audit
            let ids = export.audit.map(\.id) + export.models.flatMap { $0.history.map(\.id) }
            state.lastID = max(state.lastID, ids.max() ?? 0)
        }
    }

    public func hasTokens() async throws -> Bool {
        try reading { !$0.tokens.isEmpty }
    }

    public func createToken(name: TokenLabel, scope: TokenScope, secret: TokenSecret, actor: String) async throws
        -> TokenRecord
    {
        try writing { state in
            guard !state.tokens.contains(where: { $0.record.name == name && $0.record.revokedAt == nil }) else {
                throw RegistryError(
                    .conflict, "a token named '\(name)' already exists: revoke it first or choose another name")
            }
            let record = TokenRecord(name: name, scope: scope, createdAt: Timestamp.now())
            state.tokens.append(Token(record: record, hash: secret.hash))
            state.record(actor, .tokenCreate, nil, target: name.value, detail: "scope \(scope.rawValue)")
            return record
        }
    }

    public func installAdminToken(name: TokenLabel, secret: TokenSecret, actor: String) async throws -> Bool {
        try writing { state in
            let hash = secret.hash
            if let known = state.tokens.first(where: { $0.hash == hash })?.record {
                try AdminTokenFile.checkKnown(scope: known.scope.rawValue, revokedAt: known.revokedAt)
                return false
            }
            let now = Timestamp.now()
            if let index = state.tokens.firstIndex(where: { $0.record.name == name && $0.record.revokedAt == nil }) {
                state.tokens[index].record.revokedAt = now
                state.record(actor, .tokenRevoke, nil, target: name.value, detail: "replaced by a new token file")
            }
            state.tokens.append(Token(record: TokenRecord(name: name, scope: .admin, createdAt: now), hash: hash))
            state.record(actor, .tokenCreate, nil, target: name.value, detail: "scope admin, from a token file")
            return true
        }
    }

    // Sessions change no answer the store gives: they go around `writing`, which would move the change count.
    public func createWebSession(_ session: WebSession, now: Date) async throws {
        storage.state.withLock { state in
            state.webSessions = state.webSessions.filter { $0.value.expiresAt >= now }
            state.webSessions[session.idHash] = session
        }
    }

    public func webSession(idHash: String, now: Date) async throws -> WebSession? {
        try reading { state in state.webSessions[idHash].flatMap { $0.expiresAt >= now ? $0 : nil } }
    }

    public func deleteWebSession(idHash: String) async throws {
        _ = storage.state.withLock { $0.webSessions.removeValue(forKey: idHash) }
    }

    public func token(hash: String) async throws -> TokenRecord? {
        try reading { state in
            state.tokens.first { $0.record.revokedAt == nil && constantTimeEquals($0.hash, hash) }?.record
        }
    }

    public func tokens() async throws -> [TokenRecord] {
        try reading { $0.tokens.map(\.record) }
    }

    public func revokeToken(name: TokenLabel, actor: String) async throws -> TokenRecord {
        try writing { state in
            guard let index = state.tokens.firstIndex(where: { $0.record.name == name && $0.record.revokedAt == nil })
            else {
                throw RegistryError.notFound("active token '\(name)'")
            }
            state.tokens[index].record.revokedAt = Timestamp.now()
            state.record(actor, .tokenRevoke, nil, target: name.value, detail: nil)
            return state.tokens[index].record
        }
    }
}
