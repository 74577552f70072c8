import Foundation
import ModelRegistryCore
import Testing

/// What every `MetadataStore` backend must do, the races included. A new backend adds itself to
/// `MetadataBackend.all` and passes these.
@Suite struct MetadataStoreConformanceTests {
    @Test(arguments: MetadataBackend.all)
    func publishingIsIdempotentAndPublishedVariantsNeverChange(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let first = try await store.publish("org/m", "1.0", files: ["w.bin": "weights"])
            guard case .created(let summary) = first else {
                Issue.record("expected created, got \(first)")
                return
            }
            #expect(try await store.publish("org/m", "1.0", files: ["w.bin": "weights"]) == .unchanged(summary))
            #expect(await errorCode { try await store.publish("org/m", "1.0", files: ["w.bin": "other"]) } == .conflict)
            let stored = try #require(try await instance().manifest(ModelName("org/m"), digest: summary.digest))
            #expect(
                stored.digest == Digest.of(stored.bytes), "the manifest is kept as the bytes that hash to its digest")
            #expect(try await store.listModels().map(\.name.value) == ["org/m"])
        }
    }

    /// A manifest is kept as the bytes given, named by their digest, with their media type: not re-encoded.
    @Test(arguments: MetadataBackend.all)
    func aManifestIsKeptAsTheBytesGiven(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let file = ManifestFile(path: try ManifestPath("w"), digest: Digest.of(Array("w".utf8)), size: 1)
            try await store.recordBlob(BlobInfo(digest: file.digest, size: 1))
            let document = ManifestDocument(
                bytes: Array("{ \"schemaVersion\": 2,\n  \"note\": \"kept as sent\" }".utf8),
                mediaType: "application/vnd.oci.image.manifest.v1+json")
            let outcome = try await store.publish(
                PublishRequest(
                    model: try ModelName("m"), version: try VersionName("1"), variant: .default,
                    manifest: Manifest(format: .other, files: [file]), document: document, actor: "test"))
            #expect(outcome.variant.digest == document.digest)
            let stored = try #require(try await instance().manifest(ModelName("m"), digest: document.digest))
            #expect(stored.bytes == document.bytes && stored.mediaType == document.mediaType)
            let resolved = try await store.resolve(ModelReference(parsing: "m:1"), variant: nil)
            #expect(resolved == stored)
        }
    }

    /// An OCI artifact as a client pushed it: documents in the client's own formatting.
    static let artifact = PushedArtifact(
        manifest: ManifestDocument(
            bytes: Array(
                "{\n  \"schemaVersion\": 2, \"artifactType\": \"application/vnd.cncf.model.manifest.v1+json\"\n}".utf8),
            mediaType: "application/vnd.oci.image.manifest.v1+json"),
        config: ManifestDocument(
            bytes: Array(#"{"descriptor": {"name": "m"}}"#.utf8), mediaType: "application/vnd.cncf.model.config.v1+json"
        ))

    /// The OCI artifact a variant was pushed as stays with it, byte for byte, however it is read; a variant
    /// published otherwise has none.
    @Test(arguments: MetadataBackend.all)
    func aPushedArtifactIsKeptWithItsVariant(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let pushed = try await store.publish("m", "1", files: ["w": "pushed"], pushedArtifact: Self.artifact)
            let plain = try await store.publish("m", "2", files: ["w": "plain"])
            let other = try instance()
            let model = try ModelName("m")
            #expect(try await other.manifest(model, digest: pushed.variant.digest)?.pushedArtifact == Self.artifact)
            #expect(try await other.manifest(model, VersionName("1"), .default)?.pushedArtifact == Self.artifact)
            #expect(
                try await other.resolve(ModelReference(parsing: "m:1"), variant: nil).pushedArtifact == Self.artifact)
            #expect(try await other.manifest(model, digest: plain.variant.digest)?.pushedArtifact == nil)
            #expect(try await other.resolve(ModelReference(parsing: "m:2"), variant: nil).pushedArtifact == nil)
        }
    }

    /// An artifact pushed with a tar layer (a ModelPack archive layer, a KitOps ModelKit) whose file is `file`.
    static func archiveArtifact(layer: String, file: String) -> PushedArtifact {
        func descriptor(_ content: String) -> String {
            #"{"mediaType":"application/vnd.cncf.model.weight.v1.tar","digest":"\#(Digest.of(Array(content.utf8)))","size":\#(content.utf8.count)}"#
        }
        return PushedArtifact(
            manifest: ManifestDocument(
                bytes: Array(#"{"schemaVersion":2,"layers":[\#(descriptor(layer)),\#(descriptor(file))]}"#.utf8),
                mediaType: "application/vnd.oci.image.manifest.v1+json"),
            config: artifact.config)
    }

    /// The tar layers of the artifact a variant was pushed as must be recorded blobs, are kept from garbage
    /// collection with the variant, and go with its version; a layer that is one of its files is kept as that.
    @Test(arguments: MetadataBackend.all)
    func archiveLayersAreKeptWithTheirVariant(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let model = try ModelName("m")
            let artifact = Self.archiveArtifact(layer: "a tar of w", file: "w")
            let layer = Digest.of(Array("a tar of w".utf8))
            #expect(
                artifact.archiveLayers(besides: [
                    ManifestFile(path: try ManifestPath("w"), digest: Digest.of(Array("w".utf8)), size: 1)
                ]) == [BlobEntry(digest: layer, size: 10)])
            #expect(
                await errorCode { try await store.publish("m", "1", files: ["w": "w"], pushedArtifact: artifact) }
                    == .blobsMissing)
            try await store.recordBlobs([StoredBlob(digest: layer, size: 10, stored: Date())])
            try await store.publish("m", "1", files: ["w": "w"], pushedArtifact: artifact)
            let other = try instance()
            #expect(try await other.referencedBlobs() == [layer, Digest.of(Array("w".utf8))])
            #expect(
                try await other.claimUnreferencedBlobs([layer], recordedBefore: Date().addingTimeInterval(60)).isEmpty)
            try await store.publish("m", "2", files: ["x": "x"])
            _ = try await other.deleteVersion(model, VersionName("1"), actor: "ops")
            #expect(try await store.referencedBlobs() == [Digest.of(Array("x".utf8))])
            #expect(
                try await store.claimUnreferencedBlobs([layer], recordedBefore: Date().addingTimeInterval(60)) == [
                    layer
                ])
        }
    }

    /// A signature of `subject`, naming one blob.
    static func referrer(_ text: String, subject: Digest, at time: String) -> StoredReferrer {
        StoredReferrer(
            document: ManifestDocument(
                bytes: Array(#"{"schemaVersion":2,"note":"\#(text)"}"#.utf8),
                mediaType: "application/vnd.oci.image.manifest.v1+json"),
            subject: subject, artifactType: "application/vnd.example.signature",
            blobs: [BlobEntry(digest: Digest.of(Array(text.utf8)), size: Int64(text.utf8.count))], createdAt: time,
            createdBy: "signer")
    }

    /// Referrers stay with their variant, oldest first, keep their blobs from garbage collection, and go with
    /// the variant's version.
    @Test(arguments: MetadataBackend.all)
    func referrersStayWithTheirVariantAndGoWithIt(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let model = try ModelName("m")
            let subject = try await store.publish("m", "1", files: ["w": "one"]).variant.digest
            _ = try await store.publish("m", "2", files: ["w": "two"])
            let first = Self.referrer("sig-1", subject: subject, at: "2026-12-04T10:00:00.000Z")
            let second = Self.referrer("sig-2", subject: subject, at: "2026-12-04T10:00:01.000Z")
            for referrer in [first, second] {
                let blob = referrer.blobs[0]
                await #expect(throws: RegistryError.self, "its blob is not recorded yet") {
                    try await store.recordReferrer(referrer, of: model, VersionName("1"), .default)
                }
                try await store.recordBlobs([StoredBlob(digest: blob.digest, size: blob.size, stored: Date())])
                try await store.recordReferrer(referrer, of: model, VersionName("1"), .default)
            }
            try await store.recordReferrer(first, of: model, VersionName("1"), .default)
            await #expect(throws: RegistryError.self) {
                try await store.recordReferrer(first, of: model, VersionName("1"), VariantName("other"))
            }
            let other = try instance()
            #expect(try await other.referrers(model) == [first, second])
            let blobs = [first, second].map(\.blobs[0].digest)
            #expect(try await other.referencedBlobs().isSuperset(of: blobs))
            #expect(
                try await other.claimUnreferencedBlobs(blobs, recordedBefore: Date().addingTimeInterval(60)).isEmpty)

            _ = try await other.deleteVersion(model, VersionName("1"), actor: "ops")
            #expect(try await store.referrers(model).isEmpty)
            #expect(try await store.referencedBlobs().isDisjoint(with: blobs))
        }
    }

    /// A claim takes exactly the candidates no manifest names and recorded before the cutoff (or never
    /// recorded); a claimed blob can no longer be published, and recording it again brings it back.
    @Test(arguments: MetadataBackend.all)
    func claimsTakeOnlyOldUnreferencedBlobs(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            try await store.publish("m", "1", files: ["w": "referenced"])
            let referenced = Digest.of(Array("referenced".utf8))
            let old = Digest.of(Array("old".utf8))
            let fresh = Digest.of(Array("fresh".utf8))
            let unrecorded = Digest.of(Array("unrecorded".utf8))
            let hourAgo = Date().addingTimeInterval(-3600)
            try await store.recordBlobs([
                StoredBlob(digest: old, size: 3, stored: hourAgo.addingTimeInterval(-60)),
                StoredBlob(digest: fresh, size: 5, stored: Date()),
            ])
            // An older time never lowers a record's: the blob was stored since.
            try await store.recordBlobs([StoredBlob(digest: fresh, size: 5, stored: hourAgo.addingTimeInterval(-60))])
            #expect(try await store.referencedBlobs() == [referenced])
            let claimed = try await instance().claimUnreferencedBlobs(
                [referenced, old, fresh, unrecorded], recordedBefore: hourAgo)
            #expect(Set(claimed) == [old, unrecorded])
            let file = ManifestFile(path: try ManifestPath("w"), digest: old, size: 3)
            let request = PublishRequest(
                model: try ModelName("m"), version: try VersionName("2"), variant: .default,
                manifest: Manifest(format: .other, files: [file]), actor: "test")
            #expect(await errorCode { _ = try await store.publish(request) } == .blobsMissing)
            try await store.recordBlob(BlobInfo(digest: old, size: 3))
            #expect(try await store.claimUnreferencedBlobs([old], recordedBefore: hourAgo).isEmpty)
            _ = try await store.publish(request)
        }
    }

    /// A manifest names only recorded blobs, with their recorded sizes.
    @Test(arguments: MetadataBackend.all)
    func aManifestOfUnrecordedBlobsIsRefused(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let file = ManifestFile(path: try ManifestPath("w"), digest: Digest.of(Array("w".utf8)), size: 1)
            let request = PublishRequest(
                model: try ModelName("m"), version: try VersionName("1"), variant: .default,
                manifest: Manifest(format: .other, files: [file]), actor: "test")
            #expect(await errorCode { _ = try await store.publish(request) } == .blobsMissing)
            try await store.recordBlob(BlobInfo(digest: file.digest, size: 2))
            #expect(await errorCode { _ = try await store.publish(request) } == .blobsMissing)
            #expect(try await store.listModels().isEmpty)
        }
    }

    /// Publishes racing from two instances, every one sharing a blob with the others: all are published.
    @Test(arguments: MetadataBackend.all)
    func concurrentPublishesSharingBlobsAllSucceed(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let stores = [try instance(), try instance()]
            try await withThrowingTaskGroup(of: PublishOutcome.self) { group in
                for version in 1...16 {
                    group.addTask {
                        try await stores[version % 2].publish(
                            "shared", "\(version)", files: ["config.json": "{}", "w.bin": "weights \(version)"])
                    }
                }
                for try await outcome in group {
                    guard case .created = outcome else { throw RegistryError(.internalError, "\(outcome)") }
                }
            }
            let detail = try #require(try await stores[0].model(ModelName("shared")))
            #expect(Set(detail.versions.map(\.name.value)) == Set((1...16).map(String.init)))
        }
    }

    /// 32 compare-and-swap moves from the same expected target, from two instances: exactly one wins, the
    /// others are told the alias moved, and the history holds the one move.
    @Test(arguments: MetadataBackend.all)
    func thirtyTwoCompareAndSwapMovesHaveOneWinner(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let stores = [try instance(), try instance()]
            for version in 1...33 { try await stores[0].publish("m", "\(version)", files: ["w": "v\(version)"]) }
            _ = try await stores[0].set("m", "prod", "1")
            let expected = AliasExpectation.target(try VersionName("1"), variant: nil)
            let codes = await withTaskGroup(of: RegistryError.Code?.self) { group in
                for mover in 2...33 {
                    group.addTask {
                        await errorCode {
                            _ = try await stores[mover % 2].set("m", "prod", "\(mover)", expecting: expected)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(codes.filter { $0 == nil }.count == 1, "\(codes)")
            #expect(codes.filter { $0 == .aliasMoved }.count == 31, "\(codes)")
            let history = try #require(try await stores[1].aliasHistory(ModelName("m"), AliasName("prod")))
            #expect(history.count == 2)
            let now = try #require(try await stores[1].alias(ModelName("m"), AliasName("prod")))
            #expect(history.last?.toVersion == now.version && now.version.value != "1")
        }
    }

    /// A rollback walks back over earlier moves (a rollback undoes the moves it went back over); a promote
    /// copies another alias's target; an expectation of absence fails once the alias exists.
    @Test(arguments: MetadataBackend.all)
    func rollbacksWalkBackAndPromotesCopy(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            for version in 1...3 { try await store.publish("m", "\(version)", files: ["w": "v\(version)"]) }
            let model = try ModelName("m")
            func move(_ alias: String, _ kind: AliasMoveKind) async throws -> String {
                try await store.moveAlias(AliasMove(model: model, alias: try AliasName(alias), kind: kind, actor: "t"))
                    .version.value
            }
            _ = try await store.set("m", "prod", "1", expecting: .absent)
            #expect(await errorCode { _ = try await store.set("m", "prod", "2", expecting: .absent) } == .aliasMoved)
            _ = try await store.set("m", "prod", "2")
            _ = try await store.set("m", "prod", "3")
            #expect(try await move("prod", .rollback(to: nil)) == "2")
            #expect(try await move("prod", .rollback(to: nil)) == "1")
            #expect(await errorCode { _ = try await move("prod", .rollback(to: nil)) } == .conflict)
            #expect(try await move("canary", .promote(from: try AliasName("prod"))) == "1")
            #expect(
                await errorCode { _ = try await move("latest", .set(try VersionName("1"), variant: nil)) }
                    == .invalidName)
            let audit = try await store.auditLog(AuditQuery(model: model))
            #expect(audit.filter { $0.action == .aliasRollback }.count == 2)
        }
    }

    /// A version an alias points to cannot be deleted; a deleted version's name is never published again.
    @Test(arguments: MetadataBackend.all)
    func deletedNamesAreNeverReused(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            try await store.publish("m", "1", files: ["w": "one"])
            try await store.publish("m", "2", files: ["w": "two"])
            _ = try await store.set("m", "prod", "1")
            let model = try ModelName("m")
            #expect(
                await errorCode { _ = try await store.deleteVersion(model, VersionName("1"), actor: "t") } == .conflict)
            _ = try await store.set("m", "prod", "2")
            _ = try await store.deleteVersion(model, VersionName("1"), actor: "t")
            #expect(try await store.version(model, VersionName("1")) == nil)
            #expect(await errorCode { try await store.publish("m", "1", files: ["w": "again"]) } == .conflict)
            #expect(try await store.model(model)?.versions.map(\.name.value) == ["2"])
        }
    }

    /// Which variant a reference resolves to: the one asked for, else the alias's, else the only one, else
    /// `default`; several without a default is ambiguous. @latest skips deprecated versions.
    @Test(arguments: MetadataBackend.all)
    func referencesResolveToOneVariant(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            try await store.publish("m", "1", variant: "fp16", files: ["w": "1 fp16"])
            try await store.publish("m", "2", variant: "fp16", files: ["w": "2 fp16"])
            try await store.publish("m", "2", variant: "int4", files: ["w": "2 int4"])
            try await store.publish("m", "3", files: ["w": "3"])
            try await store.publish("m", "3", variant: "int4", files: ["w": "3 int4"])
            func resolve(_ text: String, _ variant: String? = nil) async throws -> String {
                let stored = try await store.resolve(
                    ModelReference(parsing: text), variant: try variant.map { try VariantName($0) })
                return "\(stored.version):\(stored.variant)"
            }
            #expect(try await resolve("m:1") == "1:fp16")
            #expect(await errorCode { _ = try await resolve("m:2") } == .ambiguousVariant)
            #expect(try await resolve("m:2", "int4") == "2:int4")
            #expect(try await resolve("m:3") == "3:default")
            _ = try await store.moveAlias(
                AliasMove(
                    model: try ModelName("m"), alias: try AliasName("prod"),
                    kind: .set(try VersionName("2"), variant: try VariantName("int4")), actor: "t"))
            #expect(try await resolve("m@prod") == "2:int4")
            #expect(try await resolve("m@prod", "fp16") == "2:fp16")
            #expect(try await resolve("m@latest") == "3:default")
            _ = try await store.deprecate(try ModelName("m"), try VersionName("3"), reason: "broken", actor: "t")
            #expect(try await resolve("m@latest", "fp16") == "2:fp16")
            #expect(await errorCode { _ = try await resolve("m:9") } == .notFound)
        }
    }

    /// The change count of a model moves with every write to it, and only to it.
    @Test(arguments: MetadataBackend.all)
    func writesMoveTheirModelsChangeCount(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let (a, b) = (try ModelName("a"), try ModelName("b"))
            try await store.publish("b", "1", files: ["w": "b1"])
            let before = (try await store.changeCount(of: a), try await store.changeCount(of: b))
            try await store.publish("a", "1", files: ["w": "a1"])
            #expect(try await store.changeCount(of: a) != before.0)
            #expect(try await store.changeCount(of: b) == before.1)
            let afterPublish = try await store.changeCount(of: a)
            _ = try await store.set("a", "prod", "1")
            #expect(try await store.changeCount(of: a) != afterPublish)
            _ = try await store.model(a)
            #expect(try await store.changeCount(of: a) == store.changeCount(of: a), "a read moves nothing")
        }
    }

    /// Where several processes write one store, a write through any instance moves the count every instance
    /// reads, at once or as soon as the backend announces it: a replica's kept answers never outlive a move
    /// made through another. The writing instance's own count moves at once.
    @Test(arguments: MetadataBackend.all.filter(\.sharedByProcesses))
    func writesThroughAnotherInstanceMoveTheChangeCount(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let (reader, writer) = (try instance(), try instance())
            let a = try ModelName("a")
            try await writer.publish("a", "1", files: ["w": "a1"])
            try await writer.publish("a", "2", files: ["w": "a2"])
            var seen: Set<Int> = [try await reader.changeCount(of: a)]
            var written: Set<Int> = [try await writer.changeCount(of: a)]
            for version in ["1", "2", "1"] {
                _ = try await writer.set("a", "prod", version)
                let own = try await writer.changeCount(of: a)
                #expect(written.insert(own).inserted, "the writer's own count stayed at \(own) after its move")
                try await Self.eventually("the move to \(version) moves the other instance's count") {
                    !seen.contains(try await reader.changeCount(of: a))
                }
                seen.insert(try await reader.changeCount(of: a))
                #expect(try await reader.alias(a, try AliasName("prod"))?.version.value == version)
            }
        }
    }

    /// A kept-reads store keeps the tokens it checked, yet a revocation through another instance (another
    /// replica, another process) reaches it: at once, or within seconds where the backend announces changes.
    @Test(arguments: MetadataBackend.all.filter(\.sharedByProcesses))
    func aTokenRevokedThroughAnotherInstanceIsRefusedSoonAfter(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let (writer, reader) = (try instance(), KeptReadsMetadataStore(try instance()))
            let secret = TokenSecret.generate()
            _ = try await writer.createToken(name: TokenLabel("ci"), scope: .write, secret: secret, actor: "admin")
            try await Self.eventually("the count of token changes stands still, so tokens are kept") {
                reader.changeCount == reader.changeCount
            }
            #expect(try await reader.token(hash: secret.hash)?.name.value == "ci")
            _ = try await writer.revokeToken(name: TokenLabel("ci"), actor: "admin")
            try await Self.eventually("the revoked token is refused") {
                try await reader.token(hash: secret.hash) == nil
            }
        }
    }

    /// Polls `condition` for up to 10 s.
    static func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<200 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting until \(what)")
    }

    /// A claim racing a publish of the same blob, from two instances: the publish keeps the blob or the claim
    /// takes it and the publish fails, never both (a manifest naming a blob garbage collection deletes).
    @Test(arguments: MetadataBackend.all)
    func aClaimRacingAPublishNeverTakesAPublishedBlob(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let (publisher, collector) = (try instance(), try instance())
            for round in 0..<24 {
                let content = "round \(round)"
                let file = ManifestFile(
                    path: try ManifestPath("w"), digest: Digest.of(Array(content.utf8)), size: Int64(content.utf8.count)
                )
                try await publisher.recordBlobs([
                    StoredBlob(digest: file.digest, size: file.size, stored: Date().addingTimeInterval(-3600))
                ])
                let request = PublishRequest(
                    model: try ModelName("m"), version: try VersionName("\(round)"), variant: .default,
                    manifest: Manifest(format: .other, files: [file]), actor: "test")
                async let published: RegistryError.Code? = errorCode { _ = try await publisher.publish(request) }
                async let claimed = collector.claimUnreferencedBlobs([file.digest], recordedBefore: Date())
                let (publishError, claims) = try await (published, claimed)
                if claims.isEmpty {
                    #expect(publishError == nil, "round \(round): nothing claimed, yet the publish failed")
                } else {
                    #expect(publishError == .blobsMissing, "round \(round): the blob was claimed and published")
                }
            }
        }
    }

    /// Cache image records are kept per model and manifest, never for a manifest the model lacks, and go with
    /// the model's last variant that has the manifest.
    @Test(arguments: MetadataBackend.all)
    func cacheImageRecordsGoWithTheLastVariantOfTheirManifest(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let model = try ModelName("m")
            let digest = try await store.publish("m", "1", files: ["w": "shared"]).variant.digest
            _ = try await store.publish("m", "2", files: ["w": "shared"])
            let built = CacheImageRecord(digest: Digest.of(Array("tar".utf8)), size: 3, builtAt: Timestamp.now())
            let failed = CacheImageRecord(digest: nil, size: 0, builtAt: Timestamp.now(), error: "blob missing")
            try await store.recordCacheImage(built, model, digest, layout: "flat")
            try await store.recordCacheImage(failed, model, digest, layout: "hf")
            #expect(try await instance().cacheImageRecords(model, digest) == ["flat": built, "hf": failed])
            try await store.recordCacheImage(built, model, digest, layout: "hf")
            #expect(try await store.cacheImageRecords(model, digest) == ["flat": built, "hf": built])
            #expect(try await store.cacheImageRecords(try ModelName("other"), digest).isEmpty)
            let unknown = Digest.of(Array("no such manifest".utf8))
            try await store.recordCacheImage(built, model, unknown, layout: "flat")
            #expect(try await store.cacheImageRecords(model, unknown).isEmpty)
            // Version 2 still has the manifest: its records stay until that version goes too.
            _ = try await store.deleteVersion(model, VersionName("1"), actor: "t")
            #expect(try await store.cacheImageRecords(model, digest).count == 2)
            _ = try await store.deleteVersion(model, VersionName("2"), actor: "t")
            #expect(try await store.cacheImageRecords(model, digest).isEmpty)
            try await store.recordCacheImage(built, model, digest, layout: "flat")
            #expect(try await store.cacheImageRecords(model, digest).isEmpty)
        }
    }

    @Test(arguments: MetadataBackend.all)
    func tokensAreFoundByTheirHashUntilRevoked(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            #expect(try await !store.hasTokens())
            let secret = TokenSecret.generate()
            let record = try await store.createToken(name: TokenLabel("ci"), scope: .write, secret: secret, actor: "t")
            #expect(record.scope == .write && record.revokedAt == nil)
            #expect(try await instance().token(hash: secret.hash)?.name == record.name)
            #expect(
                await errorCode {
                    _ = try await store.createToken(
                        name: TokenLabel("ci"), scope: .read, secret: TokenSecret.generate(), actor: "t")
                } == .conflict)
            _ = try await store.revokeToken(name: TokenLabel("ci"), actor: "t")
            #expect(try await store.token(hash: secret.hash) == nil)
            #expect(try await store.tokens().first?.revokedAt != nil)
        }
    }

    /// A token kept outside the registry (a Kubernetes Secret) installed at every start: added once, a rotated
    /// one replaces it, and a revoked or lesser one is refused rather than re-enabled.
    @Test(arguments: MetadataBackend.all)
    func anAdminTokenFromAFileIsInstalledOnce(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let name = try TokenLabel("admin-token-file")
            let first = TokenSecret.generate()
            #expect(try await store.installAdminToken(name: name, secret: first, actor: "t"))
            #expect(try await !store.installAdminToken(name: name, secret: first, actor: "t"))
            #expect(try await store.token(hash: first.hash)?.scope == .admin)
            let rotated = TokenSecret.generate()
            #expect(try await store.installAdminToken(name: name, secret: rotated, actor: "t"))
            #expect(try await store.token(hash: first.hash) == nil, "the rotated-out token is revoked")
            #expect(
                await errorCode { _ = try await store.installAdminToken(name: name, secret: first, actor: "t") }
                    == .invalidRequest)
            let reader = TokenSecret.generate()
            _ = try await store.createToken(name: TokenLabel("reader"), scope: .read, secret: reader, actor: "t")
            #expect(
                await errorCode { _ = try await store.installAdminToken(name: name, secret: reader, actor: "t") }
                    == .invalidRequest)
            #expect(try await store.tokens().filter { $0.revokedAt == nil }.count == 2)
        }
    }

    /// The web pages' sessions: seen by every instance until they end or are deleted; a new one clears the ended.
    @Test(arguments: MetadataBackend.all)
    func webSessionsLastUntilTheyEndOrAreDeleted(backend: MetadataBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let other = try instance()
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            let first = WebSession(idHash: "a", tokenHash: "t", csrfToken: "c", expiresAt: start + 60)
            try await store.createWebSession(first, now: start)
            #expect(try await store.webSession(idHash: "a", now: start) == first)
            #expect(try await other.webSession(idHash: "a", now: start + 60) == first)
            #expect(try await store.webSession(idHash: "a", now: start + 61) == nil)
            #expect(try await store.webSession(idHash: "b", now: start) == nil)
            let second = WebSession(idHash: "b", tokenHash: "t", csrfToken: "d", expiresAt: start + 3600)
            try await other.createWebSession(second, now: start + 120)
            #expect(try await store.webSession(idHash: "a", now: start) == nil, "an ended session was kept")
            #expect(try await store.webSession(idHash: "b", now: start + 120) == second)
            try await store.deleteWebSession(idHash: "b")
            try await store.deleteWebSession(idHash: "b")
            #expect(try await other.webSession(idHash: "b", now: start + 120) == nil)
        }
    }
}
