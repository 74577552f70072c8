import Foundation
import ModelRegistryCore
import Testing

/// Alias moves, rollback over history, deprecation, deletion and the audit log, on every metadata backend.
@Suite struct ReleaseConformanceTests {
    let model = try! ModelName("qwen")

    func withStore(
        _ backend: MetadataBackend, versions: [String], _ body: @Sendable (any MetadataStore) async throws -> Void
    ) async throws {
        let model = self.model
        try await backend.open { instance in
            let store = try instance()
            for version in versions {
                let file = ManifestFile(
                    path: try ManifestPath("weights.bin"), digest: Digest.of(Array(version.utf8)), size: 3)
                try await store.recordBlob(BlobInfo(digest: file.digest, size: file.size))
                _ = try await store.publish(
                    PublishRequest(
                        model: model, version: try VersionName(version), variant: .default,
                        manifest: Manifest(format: .other, files: [file]), actor: "ci"
                    ))
            }
            try await body(store)
        }
    }

    func move(
        _ store: any MetadataStore, _ alias: String, _ kind: AliasMoveKind, expect: AliasExpectation? = nil,
        actor: String = "alice"
    ) async throws -> AliasTarget {
        try await store.moveAlias(
            AliasMove(model: model, alias: try AliasName(alias), kind: kind, expectation: expect, actor: actor))
    }

    func set(_ store: any MetadataStore, _ alias: String, _ version: String, expect: AliasExpectation? = nil)
        async throws -> AliasTarget
    {
        try await move(store, alias, .set(try VersionName(version), variant: nil), expect: expect)
    }

    @Test(arguments: MetadataBackend.all)
    func compareAndSwapMovesOnlyWhenTheExpectationHolds(backend: MetadataBackend) async throws {
        try await withStore(backend, versions: ["1", "2", "3"]) { store in
            let one = try VersionName("1")
            let two = try VersionName("2")
            let prod = try AliasName("prod")
            #expect(try await set(store, "prod", "1", expect: .absent).version.value == "1")
            #expect(await errorCode { _ = try await set(store, "prod", "2", expect: .absent) } == .aliasMoved)
            #expect(
                await errorCode { _ = try await set(store, "prod", "3", expect: .target(two, variant: nil)) }
                    == .aliasMoved)
            #expect(try await set(store, "prod", "2", expect: .target(one, variant: nil)).version.value == "2")
            let error = await #expect(throws: RegistryError.self) {
                _ = try await set(store, "prod", "3", expect: .target(one, variant: nil))
            }
            #expect(error?.httpStatus == 409)
            #expect(error?.message.contains("qwen@prod points to 2") == true)
            #expect(try await store.alias(model, prod)?.version.value == "2")
            #expect(await errorCode { _ = try await set(store, "latest", "1") } == .invalidName)
        }
    }

    @Test(arguments: MetadataBackend.all)
    func rollbackWalksBackOverEarlierMovesAndPromoteCopiesATarget(backend: MetadataBackend) async throws {
        try await withStore(backend, versions: ["1", "2", "3", "4"]) { store in
            #expect(await errorCode { _ = try await move(store, "prod", .rollback(to: nil)) } == .notFound)
            _ = try await set(store, "prod", "1")
            #expect(await errorCode { _ = try await move(store, "prod", .rollback(to: nil)) } == .conflict)
            _ = try await set(store, "prod", "2")
            _ = try await set(store, "canary", "3")
            #expect(try await move(store, "prod", .promote(from: AliasName("canary"))).version.value == "3")
            #expect(try await move(store, "prod", .rollback(to: nil)).version.value == "2")
            #expect(try await move(store, "prod", .rollback(to: nil)).version.value == "1")
            #expect(await errorCode { _ = try await move(store, "prod", .rollback(to: nil)) } == .conflict)

            _ = try await set(store, "prod", "2")
            _ = try await set(store, "prod", "3")
            _ = try await set(store, "prod", "4")
            // Straight back to 2, skipping 3; the next rollback then goes to 1.
            #expect(try await move(store, "prod", .rollback(to: VersionName("2"))).version.value == "2")
            #expect(await errorCode { _ = try await move(store, "prod", .rollback(to: VersionName("4"))) } == .conflict)
            #expect(try await move(store, "prod", .rollback(to: nil)).version.value == "1")
            #expect(
                await errorCode { _ = try await move(store, "prod", .promote(from: AliasName("prod"))) }
                    == .invalidRequest)
            #expect(
                await errorCode { _ = try await move(store, "prod", .promote(from: AliasName("nope"))) } == .notFound)

            let history = try #require(try await store.aliasHistory(model, AliasName("prod")))
            #expect(
                history.map(\.action) == [
                    .set, .set, .promote, .rollback, .rollback, .set, .set, .set, .rollback, .rollback,
                ])
            #expect(history.map(\.toVersion.value) == ["1", "2", "3", "2", "1", "2", "3", "4", "2", "1"])
            #expect(history.map { $0.fromVersion?.value } == [nil, "1", "2", "3", "2", "1", "2", "3", "4", "2"])
            #expect(try await store.aliasHistory(ModelName("nope"), AliasName("prod")) == nil)
        }
    }

    @Test(arguments: MetadataBackend.all)
    func aMoveToTheCurrentTargetChangesNothing(backend: MetadataBackend) async throws {
        try await withStore(backend, versions: ["1"]) { store in
            _ = try await set(store, "prod", "1")
            _ = try await set(store, "prod", "1")
            #expect(try await store.aliasHistory(model, AliasName("prod"))?.count == 1)
            #expect(try await store.auditLog(AuditQuery(model: model)).filter { $0.action == .aliasSet }.count == 1)
        }
    }

    @Test(arguments: MetadataBackend.all)
    func deprecatedVersionsArePullableButSkippedByLatest(backend: MetadataBackend) async throws {
        try await withStore(backend, versions: ["1", "2"]) { store in
            let latest = try ModelReference(parsing: "qwen@latest")
            #expect(try await store.resolve(latest, variant: nil).version.value == "2")
            let summary = try await store.deprecate(model, VersionName("2"), reason: "bad outputs", actor: "bob")
            #expect(summary.deprecation?.reason == "bad outputs" && summary.deprecation?.by == "bob")
            let stored = try await store.resolve(ModelReference(parsing: "qwen:2"), variant: nil)
            #expect(stored.deprecation?.reason == "bad outputs")
            #expect(try await store.resolve(latest, variant: nil).version.value == "1")
            #expect(try await store.listModels().first?.latestVersion?.value == "1")
            _ = try await store.deprecate(model, VersionName("1"), reason: nil, actor: "bob")
            #expect(await errorCode { _ = try await store.resolve(latest, variant: nil) } == .notFound)
            #expect(
                await errorCode { _ = try await store.deprecate(model, VersionName("9"), reason: nil, actor: "bob") }
                    == .notFound)
        }
    }

    @Test(arguments: MetadataBackend.all)
    func deleteIsRefusedWhileAliasedAndTheNameIsNeverReused(backend: MetadataBackend) async throws {
        try await withStore(backend, versions: ["1", "2"]) { store in
            _ = try await set(store, "prod", "1")
            _ = try await set(store, "canary", "1")
            let refused = await #expect(throws: RegistryError.self) {
                _ = try await store.deleteVersion(model, VersionName("1"), actor: "root")
            }
            #expect(refused?.code == .conflict && refused?.message.contains("@canary, @prod") == true)
            let pinned = try await store.resolve(ModelReference(parsing: "qwen:1"), variant: nil).digest

            _ = try await set(store, "prod", "2")
            _ = try await set(store, "canary", "2")
            let deleted = try await store.deleteVersion(model, VersionName("1"), actor: "root")
            #expect(deleted.variants == [.default] && deleted.size == 3)
            #expect(try await store.version(model, VersionName("1")) == nil)
            #expect(try await store.manifest(model, digest: pinned) == nil)
            #expect(
                await errorCode { _ = try await store.deleteVersion(model, VersionName("1"), actor: "root") }
                    == .conflict)
            #expect(await errorCode { _ = try await move(store, "prod", .rollback(to: nil)) } == .conflict)
            let republish = await #expect(throws: RegistryError.self) {
                let file = ManifestFile(path: try ManifestPath("w"), digest: Digest.of([1]), size: 1)
                _ = try await store.publish(
                    PublishRequest(
                        model: model, version: VersionName("1"), variant: .default,
                        manifest: Manifest(format: .other, files: [file]), actor: "ci"
                    ))
            }
            #expect(republish?.code == .conflict && republish?.message.contains("never reused") == true)
            #expect(try await store.model(model)?.versions.map(\.name.value) == ["2"])
        }
    }

    @Test(arguments: MetadataBackend.all)
    func everyChangeIsAudited(backend: MetadataBackend) async throws {
        try await withStore(backend, versions: ["1", "2"]) { store in
            _ = try await set(store, "prod", "1")
            _ = try await move(store, "canary", .set(VersionName("2"), variant: .default), actor: "carol")
            _ = try await move(store, "prod", .promote(from: AliasName("canary")))
            _ = try await move(store, "prod", .rollback(to: nil))
            _ = try await store.deprecate(model, VersionName("2"), reason: "slow", actor: "bob")
            _ = try await move(store, "canary", .set(VersionName("1"), variant: nil))
            _ = try await store.deleteVersion(model, VersionName("2"), actor: "root")
            _ = try await store.createToken(name: TokenLabel("ci2"), scope: .write, secret: .generate(), actor: "root")
            _ = try await store.revokeToken(name: TokenLabel("ci2"), actor: "root")

            let all = try await store.auditLog(AuditQuery())
            #expect(
                all.map(\.action) == [
                    .tokenRevoke, .tokenCreate, .delete, .aliasSet, .deprecate, .aliasRollback, .aliasPromote,
                    .aliasSet, .aliasSet, .publish, .publish,
                ])
            #expect(
                all.map(\.actor) == [
                    "root", "root", "root", "alice", "bob", "alice", "alice", "carol", "alice", "ci", "ci",
                ])
            #expect(all[6].target == "qwen@prod" && all[6].detail == "1 -> 2/default (promoted from @canary)")
            #expect(all[5].detail == "2/default -> 1")
            #expect(all[2].target == "qwen:2")
            #expect(all.map(\.id) == all.map(\.id).sorted(by: >))
            #expect(try await store.auditLog(AuditQuery(model: model)).count == 9)
            let page = try await store.auditLog(AuditQuery(before: all[2].id, limit: 2))
            #expect(page.map(\.id) == [all[3].id, all[4].id])
        }
    }
}
