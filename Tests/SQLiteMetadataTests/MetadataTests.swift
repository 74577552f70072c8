import Foundation
import GRDB
import Testing

@testable import ModelRegistryCore
@testable import SQLiteMetadata

@Suite struct MigratorTests {
    @Test func embeddedMigrationsMatchTheSQLiteMigrationsDirectory() throws {
        let directory = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Migrations/sqlite")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
            .sorted()
        let embedded = SchemaMigrator.embedded
        #expect(embedded.map { String(format: "%04d_%@.sql", $0.version, $0.name) } == names)
        for migration in embedded {
            let file = names.first { $0.hasPrefix(String(format: "%04d_", migration.version)) }!
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            #expect(
                migration.sql.trimmingCharacters(in: .whitespacesAndNewlines)
                    == text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    @Test func upgradesADatabaseMadeByAnEarlierMigration() async throws {
        try await withTemporaryDirectory { root in
            let path = root.appendingPathComponent("r.sqlite").path
            let migrator = SchemaMigrator()
            let pool = try DatabasePool(path: path)
            #expect(try migrator.migrate(pool, upTo: 1) == 1)
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO models (name, created_at) VALUES ('old', '2026-01-01T00:00:00.000Z')")
                #expect(try !db.tableExists("aliases"))
            }
            try pool.close()
            let store = try SQLiteMetadataStore(path: path)
            try await store.checkReady()
            #expect(try await store.model(ModelName("old"))?.name.value == "old")
            let upgraded = try DatabaseQueue(path: path)
            let versions = try await upgraded.read { db in
                try Int.fetchAll(db, sql: "SELECT version FROM schema_migrations ORDER BY version")
            }
            #expect(versions == SchemaMigrator.embedded.map(\.version))
        }
    }

    @Test func refusesADatabaseNewerThanTheBinary() async throws {
        try await withTemporaryDirectory { root in
            let path = root.appendingPathComponent("r.sqlite").path
            _ = try SQLiteMetadataStore(path: path)
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in
                try db.execute(
                    sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'now')")
            }
            try queue.close()
            let error = #expect(throws: RegistryError.self) { _ = try SQLiteMetadataStore(path: path) }
            #expect(error?.code == .databaseTooNew)
            #expect(error?.message.contains("999") == true)
        }
    }
}

@Suite struct SQLiteMetadataStoreTests {
    func manifest(_ content: String, size: Int64 = 10) throws -> Manifest {
        Manifest(
            format: .safetensors,
            files: [
                ManifestFile(
                    path: try ManifestPath("model.safetensors"), digest: Digest.of(Array(content.utf8)), size: size),
                ManifestFile(path: try ManifestPath("config.json"), digest: Digest.of(Array("config".utf8)), size: 6),
            ])
    }

    /// Publishes a manifest of `content`, recording its blobs first as the upload route does.
    func publish(_ store: SQLiteMetadataStore, _ version: String, _ variant: String, _ content: String) async throws
        -> PublishOutcome
    {
        let manifest = try manifest(content)
        for file in manifest.files { try await store.recordBlob(BlobInfo(digest: file.digest, size: file.size)) }
        return try await store.publish(
            PublishRequest(
                model: try ModelName("org/m"), version: try VersionName(version), variant: try VariantName(variant),
                manifest: manifest, actor: "test"
            ))
    }

    /// A manifest may name only recorded blobs, with the sizes they were recorded with; nothing of a refused
    /// publish is kept.
    @Test func aManifestOfUnrecordedOrMissizedBlobsIsRefused() async throws {
        try await withTemporaryDirectory { root in
            let store = try SQLiteMetadataStore(path: root.appendingPathComponent("r.sqlite").path)
            let manifest = try manifest("weights")
            let request = PublishRequest(
                model: try ModelName("org/m"), version: try VersionName("1.0"), variant: .default, manifest: manifest,
                actor: "test")
            let unrecorded = await #expect(throws: RegistryError.self) { try await store.publish(request) }
            #expect(unrecorded?.code == .blobsMissing)
            #expect(unrecorded?.message.contains("2 blob(s)") == true, "\(String(describing: unrecorded))")
            for file in manifest.files {
                try await store.recordBlob(BlobInfo(digest: file.digest, size: file.size == 10 ? 11 : file.size))
            }
            let missized = await #expect(throws: RegistryError.self) { try await store.publish(request) }
            #expect(missized?.code == .blobsMissing)
            #expect(missized?.message.contains("1 blob(s)") == true, "\(String(describing: missized))")
            #expect(missized?.message.contains("is 11 bytes, not 10") == true, "\(String(describing: missized))")
            #expect(try await store.listModels().isEmpty)
        }
    }

    @Test func publishIsIdempotentAndImmutable() async throws {
        try await withTemporaryDirectory { root in
            let store = try SQLiteMetadataStore(path: root.appendingPathComponent("r.sqlite").path)
            let first = try await publish(store, "1.0", "fp16", "weights")
            guard case .created(let summary) = first else {
                Issue.record("expected created")
                return
            }
            #expect(summary.digest == (try manifest("weights")).digest)
            #expect(summary.size == 16)
            #expect(try await publish(store, "1.0", "fp16", "weights") == .unchanged(summary))
            let error = await #expect(throws: RegistryError.self) {
                _ = try await publish(store, "1.0", "fp16", "other")
            }
            #expect(error?.code == .conflict)
            let stored = try await store.manifest(ModelName("org/m"), VersionName("1.0"), VariantName("fp16"))
            #expect(stored?.bytes == (try manifest("weights")).canonicalJSON())
        }
    }

    @Test func resolvesVersionsAliasesAndDigests() async throws {
        try await withTemporaryDirectory { root in
            let store = try SQLiteMetadataStore(path: root.appendingPathComponent("r.sqlite").path)
            let fp16 = try await publish(store, "1.0", "fp16", "a").variant
            let awq = try await publish(store, "1.0", "awq-int4", "b").variant
            let v2 = try await publish(store, "2.0", "default", "c").variant
            let name = try ModelName("org/m")

            let ambiguous = await #expect(throws: RegistryError.self) {
                _ = try await store.resolve(ModelReference(parsing: "org/m:1.0"), variant: nil)
            }
            #expect(ambiguous?.code == .ambiguousVariant)
            #expect(
                try await store.resolve(ModelReference(parsing: "org/m:1.0"), variant: VariantName("awq-int4")).digest
                    == awq.digest)
            #expect(try await store.resolve(ModelReference(parsing: "org/m:2.0"), variant: nil).digest == v2.digest)

            _ = try await store.moveAlias(
                AliasMove(
                    model: name, alias: AliasName("prod"), kind: .set(VersionName("1.0"), variant: VariantName("fp16")),
                    actor: "alice"))
            #expect(try await store.resolve(ModelReference(parsing: "org/m@prod"), variant: nil).digest == fp16.digest)
            #expect(
                try await store.resolve(ModelReference(parsing: "org/m@prod"), variant: VariantName("awq-int4")).digest
                    == awq.digest)
            _ = try await store.moveAlias(
                AliasMove(
                    model: name, alias: AliasName("prod"), kind: .set(VersionName("2.0"), variant: nil), actor: "bob"))
            #expect(try await store.resolve(ModelReference(parsing: "org/m@prod"), variant: nil).digest == v2.digest)
            // A digest pin keeps resolving after the alias moved.
            let pinned = try await store.resolve(ModelReference(parsing: "org/m@\(fp16.digest)"), variant: nil)
            #expect(pinned.version.value == "1.0" && pinned.variant.value == "fp16")

            for (text, code) in [
                ("org/m:9", RegistryError.Code.notFound), ("org/m@canary", .notFound), ("other@prod", .notFound),
                ("org/m@sha256:" + String(repeating: "0", count: 64), .notFound),
            ] {
                let error = await #expect(throws: RegistryError.self) {
                    _ = try await store.resolve(ModelReference(parsing: text), variant: nil)
                }
                #expect(error?.code == code)
            }
            let missingVariant = await #expect(throws: RegistryError.self) {
                _ = try await store.moveAlias(
                    AliasMove(
                        model: name, alias: AliasName("x"),
                        kind: .set(VersionName("1.0"), variant: VariantName("nope")), actor: "a"))
            }
            #expect(missingVariant?.code == .notFound)

            let detail = try #require(try await store.model(name))
            #expect(detail.versions.map(\.name.value) == ["2.0", "1.0"])
            #expect(detail.aliases.map(\.name.value) == ["prod"])
            #expect(detail.versions.first?.aliases.map(\.value) == ["prod"])
            let history = try DatabaseQueue(path: root.appendingPathComponent("r.sqlite").path)
            let moves = try await history.read { db in
                try Row.fetchAll(db, sql: "SELECT from_version, to_version, actor FROM alias_history ORDER BY id")
                    .map { [$0["from_version"] as String?, $0["to_version"] as String?, $0["actor"] as String?] }
            }
            #expect(moves == [[nil, "1.0", "alice"], ["1.0", "2.0", "bob"]])
            let list = try await store.listModels()
            #expect(list.count == 1 && list[0].versionCount == 2 && list[0].latestVersion?.value == "2.0")
        }
    }

    @Test func tokensAreStoredAsHashesAndRevocable() async throws {
        try await withTemporaryDirectory { root in
            let path = root.appendingPathComponent("r.sqlite").path
            let store = try SQLiteMetadataStore(path: path)
            #expect(try await !store.hasTokens())
            let secret = TokenSecret.generate()
            #expect(secret.value.hasPrefix("mrt_") && secret.value.count == 47)
            _ = try await store.createToken(name: TokenLabel("ci"), scope: .write, secret: secret, actor: "admin")
            #expect(try await store.token(hash: secret.hash)?.scope == .write)
            let duplicate = await #expect(throws: RegistryError.self) {
                _ = try await store.createToken(
                    name: TokenLabel("ci"), scope: .read, secret: .generate(), actor: "admin")
            }
            #expect(duplicate?.code == .conflict)
            _ = try await store.revokeToken(name: TokenLabel("ci"), actor: "admin")
            #expect(try await store.token(hash: secret.hash) == nil)
            #expect(try await store.tokens().first?.revokedAt != nil)
            let file =
                try Data(contentsOf: URL(fileURLWithPath: path))
                + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data())
            #expect(file.range(of: Data(secret.value.utf8)) == nil)
        }
    }

    @Test func theReadCacheNeverServesAnAnswerReadBeforeAChange() throws {
        let cache = ReadCache<String, Int>(limit: 2)
        #expect(cache.value(for: "a", at: 0) == nil)
        cache.insert(1, for: "a", readAt: 0)
        #expect(cache.value(for: "a", at: 0) == 1)
        #expect(cache.value(for: "a", at: 1) == nil, "what it read changed since: not served")
        cache.insert(2, for: "a", readAt: 2)
        cache.insert(1, for: "a", readAt: 1)
        #expect(cache.value(for: "a", at: 2) == 2, "an answer read before the kept one is not kept instead")
        cache.insert(3, for: "b", readAt: 5)
        #expect(cache.value(for: "a", at: 2) == 2 && cache.value(for: "b", at: 5) == 3, "each key has its own count")
        cache.insert(4, for: "c", readAt: 2)
        #expect(
            cache.value(for: "a", at: 2) == nil && cache.value(for: "c", at: 2) == 4,
            "full: emptied before the next insert")
        cache.insert(5, for: "d", cost: 3, readAt: 2)
        #expect(cache.value(for: "d", at: 2) == nil, "an answer dearer than the limit is not kept")
    }

    @Test func everyWriteMovesTheChangeCountAndReadsDoNot() async throws {
        try await withTemporaryDirectory { root in
            let store = try SQLiteMetadataStore(path: root.appendingPathComponent("r.sqlite").path)
            let before = store.changeCount
            _ = try await store.hasTokens()
            _ = try await store.listModels()
            #expect(store.changeCount == before)
            _ = try await store.createToken(
                name: try TokenLabel("ci"), scope: .read, secret: .generate(), actor: "test")
            #expect(store.changeCount == before + 1)
            let nobody = try TokenLabel("nobody")
            await #expect(throws: RegistryError.self) { try await store.revokeToken(name: nobody, actor: "test") }
            #expect(store.changeCount == before + 2, "a write that failed moves it too: nothing read across it is kept")

            let (m, other) = (try ModelName("m"), try ModelName("other"))
            #expect(try await store.changeCount(of: m) == 0, "token writes are no model's")
            let move = AliasMove(
                model: m, alias: try AliasName("prod"), kind: .set(try VersionName("1"), variant: nil),
                expectation: nil, actor: "test")
            await #expect(throws: RegistryError.self) { try await store.moveAlias(move) }
            let moved = try await store.changeCount(of: m)
            let otherCount = try await store.changeCount(of: other)
            #expect(moved > 0 && otherCount == 0, "a write to one model moves its count only")
            _ = try await store.model(m)
            #expect(try await store.changeCount(of: m) == moved)
        }
    }
}
