import FileSystemBlobs
import Foundation
import ModelRegistryCore
import Testing

@testable import RegistryMaintenance

@Suite struct RetentionTests {
    /// A snapshot at `hoursAgo` hours before a fixed Wednesday noon (UTC).
    func snapshot(_ id: String, hoursAgo: Double) -> Snapshot {
        let noon = Date(timeIntervalSince1970: 1_795_608_000)  // 2026-11-25T12:00:00Z
        return Snapshot(
            id: id, time: Timestamp.format(noon.addingTimeInterval(-hoursAgo * 3600)), modelregVersion: "test",
            source: "test",
            metadata: .export(BlobEntry(digest: Digest.of(Array(id.utf8)), size: 1), format: 1), blobs: [], models: 0,
            versions: 0, variants: 0
        )
    }

    @Test func keepsWhatEachRuleSays() throws {
        // Two a day for ten days, at noon and at 02:00.
        var snapshots: [Snapshot] = []
        for day in 0..<10 {
            snapshots.append(snapshot("d\(day)-noon", hoursAgo: Double(day * 24)))
            snapshots.append(snapshot("d\(day)-early", hoursAgo: Double(day * 24 + 10)))
        }
        #expect(Set(try RetentionPolicy(keepLast: 3).keep(snapshots).keys) == ["d0-noon", "d0-early", "d1-noon"])
        #expect(Set(try RetentionPolicy(keepDaily: 3).keep(snapshots).keys) == ["d0-noon", "d1-noon", "d2-noon"])
        // 2026-11-25 is a Wednesday: this ISO week holds days 0–2, the previous one days 3–9 (its newest: day 3).
        #expect(Set(try RetentionPolicy(keepWeekly: 2).keep(snapshots).keys) == ["d0-noon", "d3-noon"])
        let combined = try RetentionPolicy(keepLast: 1, keepDaily: 2, keepWeekly: 2).keep(snapshots)
        #expect(Set(combined.keys) == ["d0-noon", "d1-noon", "d3-noon"])
        #expect(combined["d0-noon"] == ["last", "daily", "weekly"])
    }

    @Test func aPolicyThatKeepsNothingIsRefused() {
        #expect(throws: RegistryError.self) { _ = try RetentionPolicy() }
        #expect(throws: RegistryError.self) { _ = try RetentionPolicy(keepLast: -1, keepDaily: 2) }
    }

    @Test func pruneRemovesSnapshotsAndTheBlobsOnlyTheyNeeded() async throws {
        let data = try TestData()
        let repository = try BackupRepository.openOrCreate(data.url("repo").path)
        let runner = BackupRunner(
            repository: repository, source: try StoreBackupSource(directory: data.directory), modelregVersion: "test")
        try await data.publish("m", "1.0", ["w": bytes("first")])
        let first = try await runner.run()
        try await data.publish("m", "2.0", ["w": bytes("second")])
        let second = try await runner.run()
        let third = try await runner.run()
        let blobsBefore = try ContentAddressedTree.files(in: repository.blobs).count

        let dryRun = try Pruner(repository: repository, policy: RetentionPolicy(keepLast: 1)).run(dryRun: true)
        #expect(dryRun.removed == [second.snapshot, first.snapshot])
        #expect(try repository.allSnapshots().count == 3)
        #expect(try ContentAddressedTree.files(in: repository.blobs).count == blobsBefore)

        let report = try Pruner(repository: repository, policy: RetentionPolicy(keepLast: 1)).run(dryRun: false)
        #expect(report.kept.map(\.id) == [third.snapshot])
        #expect(try repository.allSnapshots().map(\.id) == [third.snapshot])
        #expect(try RepositoryVerifier(repository: repository, readData: true).run().healthy)
        // The second and third snapshots share their database copy; the first one's database is gone.
        #expect(report.blobsRemoved == 1)
    }
}
