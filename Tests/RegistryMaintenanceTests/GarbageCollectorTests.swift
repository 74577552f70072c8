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

    /// Publishes racing collections of their own (old, unreferenced) blobs: each round either keeps the blob
    /// and publishes, or sweeps it and refuses the publish; never a published manifest without its blob.
    @Test func collectionsRacingPublishesNeverLeaveAManifestWithoutItsBlob() async throws {
        let data = try TestData()
        let directory = data.directory
        for round in 0..<30 {
            let blob = try await data.store(bytes("round \(round)"))
            try data.age(blob.digest, seconds: 7200)
            let request = try Self.request(version: "\(round)", blob)
            let start = DispatchSemaphore(value: 0)
            let collected = Mutex(false)
            let collector = Thread {
                start.wait()
                collected.withLock {
                    $0 = (try? GarbageCollector(directory: directory, graceSeconds: 60).run(dryRun: false)) != nil
                }
            }
            collector.start()
            start.signal()
            let published: Bool
            do {
                _ = try await data.metadata.publish(request)
                published = true
            } catch let error as RegistryError where error.code == .blobsMissing {
                published = false
            }
            while !collector.isFinished { try await Task.sleep(for: .milliseconds(5)) }
            #expect(collected.withLock { $0 })
            #expect(data.hasBlob(blob.digest) == published, "round \(round)")
        }
    }

    /// The other order: a blob swept before the publish transaction makes the publish fail, storing nothing.
    @Test func aPublishAfterTheSweepIsRefused() async throws {
        let data = try TestData()
        let blob = try await data.store(bytes("swept first"))
        try data.age(blob.digest, seconds: 7200)
        _ = try GarbageCollector(directory: data.directory, graceSeconds: 60).run(dryRun: false)
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
