import Foundation
import ModelRegistryCore
import Testing

/// Export and import, what backups and restores go through: a store's export imported into an empty store of
/// any backend gives a store that answers the same and exports the same.
@Suite struct ExportConformanceTests {
    @Test(arguments: MetadataBackend.all)
    func anImportAnswersAsTheStoreExported(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let source = try instance()
            let secrets = try await Self.fill(source)
            let export = try await source.exportMetadata()
            #expect(export.models.map(\.name.value) == ["org/a", "org/b"])
            #expect(export.tokens.count == 2 && export.audit.count == 14)
            #expect(
                try export.referencedBlobs().contains(BlobEntry(digest: Digest.of(Array("a tar of b2".utf8)), size: 11))
            )
            try await backend.open { instance in
                let target = try instance()
                let model = try ModelName("org/a")
                let before = try await target.changeCount(of: model)
                try await Self.recordBlobs(of: export, in: target)
                try await target.importMetadata(export)
                #expect(
                    try await target.changeCount(of: model) != before, "kept reads of the model must see the import")
                #expect(try await target.exportMetadata() == export)
                #expect(try await target.referencedBlobs() == source.referencedBlobs())
                #expect(try await target.listModels() == source.listModels())
                #expect(try await target.model(model) == source.model(model))
                #expect(
                    try await target.aliasHistory(model, AliasName("prod"))
                        == source.aliasHistory(model, AliasName("prod")))
                #expect(try await target.auditLog(AuditQuery()) == source.auditLog(AuditQuery()))
                #expect(try await target.tokens() == source.tokens())
                #expect(try await target.token(hash: secrets.active.hash)?.name.value == "ci")
                #expect(try await target.token(hash: secrets.revoked.hash) == nil)
                let prod = try await target.resolve(ModelReference(parsing: "org/a@prod"), variant: nil)
                #expect(prod == (try await source.resolve(ModelReference(parsing: "org/a@prod"), variant: nil)))
                // The history came along: a rollback walks back over the moves made before the export.
                let back = try await target.moveAlias(
                    AliasMove(model: model, alias: try AliasName("prod"), kind: .rollback(to: nil), actor: "t"))
                #expect(back.version.value == "1")
                #expect(await errorCode { try await target.publish("org/a", "gone", files: ["w": "x"]) } == .conflict)
                // New entries continue after the imported ones.
                let newest = try #require(try await target.auditLog(AuditQuery(limit: 1)).first)
                #expect(newest.id > export.audit.map(\.id).max() ?? 0)
                #expect(await errorCode { try await target.importMetadata(export) } == .conflict)
            }
        }
    }

    /// An import whose manifests name blobs the store has not recorded fails whole and writes nothing.
    @Test(arguments: MetadataBackend.all)
    func anImportOfUnrecordedBlobsWritesNothing(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let source = try instance()
            _ = try await Self.fill(source)
            let export = try await source.exportMetadata()
            try await backend.open { instance in
                let target = try instance()
                #expect(await errorCode { try await target.importMetadata(export) } == .blobsMissing)
                #expect(try await target.listModels().isEmpty)
                #expect(try await target.tokens().isEmpty)
                #expect(try await target.auditLog(AuditQuery()).isEmpty)
                try await Self.recordBlobs(of: export, in: target)
                try await target.importMetadata(export)
                #expect(try await target.exportMetadata() == export)
            }
        }
    }

    /// A snapshot taken on one backend restores onto any other.
    @Test(arguments: MetadataBackend.all, MetadataBackend.all)
    func exportsMoveBetweenBackends(from: MetadataBackend, to: MetadataBackend) async throws {
        try await from.open { instance in
            let source = try instance()
            _ = try await Self.fill(source)
            let export = try await source.exportMetadata()
            try await to.open { instance in
                let target = try instance()
                try await Self.recordBlobs(of: export, in: target)
                try await target.importMetadata(export)
                #expect(try await target.exportMetadata() == export)
                let decoded = try MetadataExport.decode(try export.encoded(), from: "the test's export")
                #expect(decoded == export)
            }
        }
    }

    private static func recordBlobs(of export: MetadataExport, in store: any MetadataStore) async throws {
        try await store.recordBlobs(
            try export.referencedBlobs().map { StoredBlob(digest: $0.digest, size: $0.size, stored: Date()) })
    }

    /// Two models with what a registry accumulates: variants, a deprecation, a deleted version, aliases moved,
    /// rolled back and promoted, tokens active and revoked, and the audit log of all of it.
    private static func fill(_ store: any MetadataStore) async throws -> (active: TokenSecret, revoked: TokenSecret) {
        let a = try ModelName("org/a")
        try await store.publish("org/a", "1", variant: "fp16", files: ["w": "a1 fp16", "config.json": "{}"])
        try await store.publish("org/a", "1", variant: "int4", files: ["w": "a1 int4", "config.json": "{}"])
        try await store.publish("org/a", "2", variant: "fp16", files: ["w": "a2"])
        try await store.publish("org/a", "gone", files: ["w": "gone"])
        let b1 = try await store.publish(
            "org/b", "1", files: ["sub/dir/ü.bin": "b1"], pushedArtifact: MetadataStoreConformanceTests.artifact)
        let signature = MetadataStoreConformanceTests.referrer(
            "signature", subject: b1.variant.digest, at: "2026-12-04T10:00:00.000Z")
        try await store.recordBlobs(
            signature.blobs.map { StoredBlob(digest: $0.digest, size: $0.size, stored: Date()) })
        try await store.recordReferrer(signature, of: ModelName("org/b"), VersionName("1"), .default)
        let archive = MetadataStoreConformanceTests.archiveArtifact(layer: "a tar of b2", file: "b2")
        try await store.recordBlobs([
            StoredBlob(digest: Digest.of(Array("a tar of b2".utf8)), size: 11, stored: Date())
        ])
        try await store.publish("org/b", "2", files: ["w": "b2"], pushedArtifact: archive)
        _ = try await store.deleteVersion(a, VersionName("gone"), actor: "ops")
        _ = try await store.deprecate(a, VersionName("1"), reason: "superseded", actor: "ops")
        _ = try await store.moveAlias(
            AliasMove(
                model: a, alias: try AliasName("prod"),
                kind: .set(try VersionName("1"), variant: try VariantName("int4")),
                actor: "ci"))
        _ = try await store.set("org/a", "prod", "2")
        _ = try await store.moveAlias(
            AliasMove(
                model: a, alias: try AliasName("canary"), kind: .promote(from: try AliasName("prod")), actor: "ci"))
        let active = TokenSecret.generate()
        let revoked = TokenSecret.generate()
        _ = try await store.createToken(name: TokenLabel("ci"), scope: .write, secret: active, actor: "admin")
        _ = try await store.createToken(name: TokenLabel("old"), scope: .read, secret: revoked, actor: "admin")
        _ = try await store.revokeToken(name: TokenLabel("old"), actor: "admin")
        return (active, revoked)
    }
}
