import Foundation
import GRDB
import ModelRegistryCore
import RegistryAPI
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

        let collector = GarbageCollector(directory: data.directory, graceSeconds: 3600)
        let dryRun = try collector.run(dryRun: true)
        #expect(dryRun.deleted.map(\.digest) == [old])
        #expect(data.hasBlob(old))

        let report = try collector.run(dryRun: false)
        #expect(report.scanned == 3)
        #expect(report.referenced == 1)
        #expect(report.recent == 1)
        #expect(report.deleted.map(\.digest) == [old])
        #expect(report.freedBytes == Int64(bytes("old garbage").count))
        #expect(!data.hasBlob(old))
        #expect(data.hasBlob(referenced))
        #expect(data.hasBlob(recent))
        let rows = try await RegistryDatabase.open(data.directory.database.path).read { db in
            try String.fetchAll(db, sql: "SELECT digest FROM blobs")
        }
        #expect(!rows.contains(old.description))
    }

    /// The publish path confirms its blobs inside its write transaction; a collection that starts while that
    /// transaction is open waits for it, then finds the new reference and keeps the blob.
    @Test func aCollectionDuringAPublishKeepsTheBlobsItReferences() async throws {
        let data = try TestData()
        let blob = try await data.store(bytes("about to be published"))
        try data.age(blob.digest, seconds: 7200)
        let directory = data.directory
        let collected = Mutex<GarbageCollectionReport?>(nil)
        let done = DispatchSemaphore(value: 0)
        let request = PublishRequest(
            model: try ModelName("m"), version: try VersionName("1.0"), variant: .default,
            manifest: Manifest(
                format: .other, files: [ManifestFile(path: try ManifestPath("w"), digest: blob.digest, size: blob.size)]
            ),
            actor: "test",
            confirmBlobs: {
                guard FileManager.default.fileExists(atPath: directory.blob(blob.digest).path) else {
                    throw RegistryError(.blobsMissing, "gone")
                }
                Thread.detachNewThread {
                    collected.withLock {
                        $0 = try? GarbageCollector(directory: directory, graceSeconds: 60).run(dryRun: false)
                    }
                    done.signal()
                }
                Thread.sleep(forTimeInterval: 0.3)
            }
        )
        _ = try await data.metadata.publish(request)
        done.wait()
        let report = try #require(collected.withLock { $0 })
        #expect(report.deleted.isEmpty)
        #expect(data.hasBlob(blob.digest))
    }

    /// The other order: a blob swept before the publish transaction makes the publish fail, storing nothing.
    @Test func aPublishAfterTheSweepIsRefused() async throws {
        let data = try TestData()
        let blob = try await data.store(bytes("swept first"))
        try data.age(blob.digest, seconds: 7200)
        _ = try GarbageCollector(directory: data.directory, graceSeconds: 60).run(dryRun: false)
        let directory = data.directory
        let request = PublishRequest(
            model: try ModelName("m"), version: try VersionName("1.0"), variant: .default,
            manifest: Manifest(
                format: .other, files: [ManifestFile(path: try ManifestPath("w"), digest: blob.digest, size: blob.size)]
            ),
            actor: "test",
            confirmBlobs: {
                guard FileManager.default.fileExists(atPath: directory.blob(blob.digest).path) else {
                    throw RegistryError(.blobsMissing, "blob \(blob.digest) is not uploaded")
                }
            }
        )
        await #expect(throws: RegistryError.self) { _ = try await data.metadata.publish(request) }
        #expect(try await data.metadata.listModels().isEmpty)
    }

    /// A push that uploads bytes which are stored already as unreferenced garbage renews their grace period.
    @Test func uploadingGarbageAgainRenewsItsGracePeriod() async throws {
        let data = try TestData()
        let content = bytes("uploaded twice")
        let digest = try await data.store(content).digest
        try data.age(digest, seconds: 7200)
        try await data.store(content)
        #expect(try GarbageCollector(directory: data.directory, graceSeconds: 3600).run(dryRun: false).deleted.isEmpty)
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
