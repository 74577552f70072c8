import Foundation
import GRDB
import ModelRegistryCore
import RegistryAPI
import SQLiteMetadata
import Synchronization
import Testing

@testable import RegistryMaintenance

@Suite struct GarbageCollectorTests {
    @Test func sweepsOnlyUnreferencedBlobsOlderThanTheGracePeriod() async throws {
        let data = try TestData()
        let manifest = try await data.publish("m", "1.0", ["w": bytes("kept")])
        let referenced = try #require(try await data.metadata.manifest(ModelName("m"), digest: manifest)).decoded()
            .files[0].digest
        let old = try await data.store(bytes("old garbage")).digest
        let recent = try await data.store(bytes("recent upload")).digest
        try data.age(referenced, seconds: 7200)
        try data.age(old, seconds: 7200)

        let collector = GarbageCollector(blobs: data.blobs, metadata: data.metadata, graceSeconds: 3600)
        let dryRun = try await collector.run(dryRun: true)
        #expect(dryRun.deleted.map(\.digest) == [old])
        #expect(data.hasBlob(old))

        let report = try await collector.run(dryRun: false)
        #expect(report.scanned == 3)
        #expect(report.referenced == 1)
        #expect(report.recent == 1)
        #expect(report.deleted.map(\.digest) == [old])
        #expect(report.freedBytes == Int64(bytes("old garbage").count))
        #expect(!data.hasBlob(old))
        #expect(data.hasBlob(referenced))
        #expect(data.hasBlob(recent))
        #expect(try !data.recordedBlobs().contains(old))
    }

    /// Publishes racing collections of their own (old, unreferenced) blobs, every other one uploading the
    /// bytes again first as a client that lost its upload's answer would: each round either keeps the blob and
    /// publishes, or sweeps it and refuses the publish; never a published manifest without its blob, and never
    /// a record of a blob the store lost.
    @Test func collectionsRacingPublishesNeverLeaveAManifestWithoutItsBlob() async throws {
        let data = try TestData()
        for round in 0..<40 {
            let content = bytes("round \(round)")
            let blob = try await data.store(content)
            try data.age(blob.digest, seconds: 7200)
            let request = try Self.request(version: "\(round)", blob)
            async let collected = GarbageCollector(blobs: data.blobs, metadata: data.metadata, graceSeconds: 60)
                .run(dryRun: false)
            let published: Bool
            do {
                if round % 2 == 1 { try await data.store(content) }
                _ = try await data.metadata.publish(request)
                published = true
            } catch let error as RegistryError where error.code == .blobsMissing {
                published = false
            }
            _ = try await collected
            #expect(!published || data.hasBlob(blob.digest), "round \(round): published without its blob")
            if try data.recordedBlobs().contains(blob.digest) {
                #expect(data.hasBlob(blob.digest), "round \(round): recorded without its blob")
            }
        }
    }

    /// The other order: a blob swept before the publish transaction makes the publish fail, storing nothing.
    @Test func aPublishAfterTheSweepIsRefused() async throws {
        let data = try TestData()
        let blob = try await data.store(bytes("swept first"))
        try data.age(blob.digest, seconds: 7200)
        _ = try await GarbageCollector(blobs: data.blobs, metadata: data.metadata, graceSeconds: 60).run(dryRun: false)
        let error = await #expect(throws: RegistryError.self) {
            _ = try await data.metadata.publish(try Self.request(version: "1.0", blob))
        }
        #expect(error?.code == .blobsMissing)
        #expect(try await data.metadata.listModels().isEmpty)
    }

    static func request(version: String, _ blob: BlobInfo) throws -> PublishRequest {
        PublishRequest(
            model: try ModelName("m"), version: try VersionName(version), variant: .default,
            manifest: Manifest(
                format: .other, files: [ManifestFile(path: try ManifestPath("w"), digest: blob.digest, size: blob.size)]
            ),
            actor: "test")
    }

    /// `gc --dry-run --data` may look at a directory a server is running on: it writes nothing, not even the
    /// migrations its binary knows and the database lacks.
    @Test func aDryRunOnADataDirectoryLeavesItsSchemaAlone() async throws {
        let data = try TestData()
        try await data.publish("m", "1.0", ["w": bytes("kept")])
        let old = try await data.store(bytes("old garbage")).digest
        try data.age(old, seconds: 7200)
        let latest = SchemaMigrator().latestVersion
        try await DatabaseQueue(path: data.directory.database.path).write { db in
            try db.execute(sql: "DELETE FROM schema_migrations WHERE version = ?", arguments: [latest])
        }
        let stores = try LocalStores(data.directory, readingOnly: true)
        let report = try await GarbageCollector(blobs: stores.blobs, metadata: stores.metadata, graceSeconds: 3600)
            .run(dryRun: true)
        #expect(report.deleted.map(\.digest) == [old])
        let applied = try await DatabaseQueue(path: data.directory.database.path).read { db in
            try SchemaMigrator.appliedVersion(db)
        }
        #expect(applied == latest - 1)
    }

    /// A push that uploads bytes which are stored already as unreferenced garbage renews their grace period.
    @Test func uploadingGarbageAgainRenewsItsGracePeriod() async throws {
        let data = try TestData()
        let content = bytes("uploaded twice")
        let digest = try await data.store(content).digest
        try data.age(digest, seconds: 7200)
        try await data.store(content)
        #expect(
            try await GarbageCollector(blobs: data.blobs, metadata: data.metadata, graceSeconds: 3600).run(
                dryRun: false
            ).deleted.isEmpty)
        #expect(data.hasBlob(digest))
    }

    @Test func durationsParse() throws {
        #expect(try DurationText.seconds("90s") == 90)
        #expect(try DurationText.seconds("30m") == 1800)
        #expect(try DurationText.seconds("2h") == 7200)
        #expect(try DurationText.seconds("7d") == 604_800)
        #expect(try DurationText.seconds("1w") == 604_800)
        #expect(try DurationText.seconds("45") == 45)
        for bad in ["", "h", "-1h", "1.5h", "1y", "99999999999999d"] {
            #expect(throws: RegistryError.self) { _ = try DurationText.seconds(bad) }
        }
    }
}
