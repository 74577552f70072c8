import FileSystemBlobs
import Foundation
import ModelRegistryCore
import Testing

@testable import RegistryMaintenance

@Suite struct ScrubberTests {
    @Test func corruptBlobsAreQuarantinedAndRepairedFromABackup() async throws {
        let data = try TestData()
        try await data.publish("m", "1.0", ["a": bytes("a"), "b": bytes("b")])
        let repository = try BackupRepository.openOrCreate(data.url("repo").path)
        _ = try await BackupRunner(
            repository: repository, source: try StoreBackupSource(directory: data.directory), modelregVersion: "test"
        ).run()
        #expect(try await Scrubber(blobs: data.blobs, references: data.metadata).run().healthy)

        let victim = try ContentAddressedTree.files(in: data.directory.blobs)[0]
        try TestData.flipBit(victim.path, at: 7)
        let presenceOnly = try await Scrubber(blobs: data.blobs, references: data.metadata, sample: 0).run()
        #expect(presenceOnly.checked == 0)
        #expect(presenceOnly.healthy)

        let report = try await Scrubber(blobs: data.blobs, references: data.metadata, sample: 1).run()
        #expect(report.checked == 2)
        #expect(report.corrupt == [victim.digest])
        #expect(report.missing == [victim.digest])
        #expect(report.quarantined == 1)
        #expect(!data.hasBlob(victim.digest))
        #expect(throws: RegistryError.self) { _ = try data.blobs.reader(victim.digest) }

        let repair = try await Repairer(
            repository: repository, target: try StoreRepairTarget(directory: data.directory)
        )
        .run()
        #expect(repair.repaired == [victim.digest])
        #expect(repair.stillMissing.isEmpty)
        let after = try await Scrubber(blobs: data.blobs, references: data.metadata).run()
        #expect(after.healthy)
        #expect(after.quarantined == 0)
    }

    @Test func aSampleOutsideZeroToOneIsRefused() throws {
        let data = try TestData()
        #expect(throws: RegistryError.self) {
            _ = try Scrubber(blobs: data.blobs, references: data.metadata, sample: 1.5)
        }
        #expect(throws: RegistryError.self) {
            _ = try Scrubber(blobs: data.blobs, references: data.metadata, sample: -0.1)
        }
    }
}
