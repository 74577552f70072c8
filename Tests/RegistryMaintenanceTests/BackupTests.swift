import FileSystemBlobs
import Foundation
import GRDB
import ModelRegistryCore
import SQLiteMetadata
import Synchronization
import Testing

@testable import RegistryMaintenance

@Suite struct BackupTests {
    func backup(_ data: TestData, _ repository: BackupRepository) async throws -> BackupReport {
        try await BackupRunner(
            repository: repository, source: try StoreBackupSource(directory: data.directory), modelregVersion: "test"
        ).run()
    }

    @Test func backupIsIncrementalAndRestoresTheSameRegistry() async throws {
        let data = try TestData()
        try await data.publish("m", "1.0", ["w": bytes("one"), "config.json": Array("{}".utf8)])
        try await data.publish("org/n", "2.0", ["w": bytes("two")])
        _ = try await data.metadata.moveAlias(
            AliasMove(
                model: try ModelName("m"), alias: try AliasName("prod"),
                kind: .set(try VersionName("1.0"), variant: nil), actor: "test"
            ))
        _ = try await data.metadata.createToken(
            name: try TokenLabel("ci"), scope: .write, secret: .generate(), actor: "test")

        let repository = try BackupRepository.openOrCreate(data.url("repo").path)
        let first = try await backup(data, repository)
        #expect(first.blobs == 3)
        #expect(first.blobsCopied == 3)
        let second = try await backup(data, repository)
        #expect(second.blobsCopied == 0)
        #expect(second.bytesCopied == 0)
        try await data.publish("m", "1.1", ["w": bytes("three"), "config.json": Array("{}".utf8)])
        let third = try await backup(data, repository)
        #expect(third.blobs == 4)
        #expect(third.blobsCopied == 1)
        #expect(try repository.allSnapshots().map(\.id) == [first.snapshot, second.snapshot, third.snapshot])

        let target = DataDirectory(data.url("restored").path)
        let report = try await Restorer(repository: repository, snapshotID: nil, target: target, force: false).run()
        #expect(report.snapshot == third.snapshot)
        #expect(report.models == 2)
        let original = try ContentAddressedTree.files(in: data.directory.blobs).map(\.digest)
        #expect(try ContentAddressedTree.files(in: target.blobs).map(\.digest) == original)
        let restored = try SQLiteMetadataStore(path: target.database.path)
        #expect(try await restored.exportMetadata() == data.metadata.exportMetadata())
        #expect(try await restored.listModels() == data.metadata.listModels())
        #expect(try await restored.tokens() == data.metadata.tokens())
        #expect(try await restored.referencedBlobs() == data.metadata.referencedBlobs())
        #expect(!FileManager.default.fileExists(atPath: target.restoreMarker.path))

        let older = DataDirectory(data.url("older").path)
        let olderReport = try await Restorer(
            repository: repository, snapshotID: String(first.snapshot.prefix(30)), target: older, force: false
        ).run()
        #expect(olderReport.snapshot == first.snapshot)
        #expect(try ContentAddressedTree.files(in: older.blobs).count == 3)
    }

    /// Deletes a version and collects its blobs the first time the backup copies a blob.
    final class DeletingSource: BackupSource {
        let local: StoreBackupSource
        let data: TestData
        let deleted = Mutex(false)

        init(local: StoreBackupSource, data: TestData) {
            self.local = local
            self.data = data
        }

        var description: String { local.description }

        func exportMetadata() async throws -> MetadataExport { try await local.exportMetadata() }

        func copyBlob(_ blob: BlobEntry, to path: String) async throws -> BlobEntry {
            if deleted.withLock({ done in
                defer { done = true }
                return !done
            }) {
                _ = try await data.metadata.deleteVersion(try ModelName("m"), try VersionName("1.0"), actor: "test")
                _ = try await GarbageCollector(blobs: data.blobs, metadata: data.metadata, graceSeconds: 0).run(
                    dryRun: false)
            }
            return try await local.copyBlob(blob, to: path)
        }
    }

    @Test func aBlobCollectedDuringTheBackupStartsItOverFromANewSnapshot() async throws {
        let data = try TestData()
        try await data.publish("m", "1.0", ["a": bytes("deleted during the backup"), "b": bytes("also")])
        try await data.publish("m", "2.0", ["a": bytes("kept")])
        let repository = try BackupRepository.openOrCreate(data.url("repo").path)
        let source = DeletingSource(local: try StoreBackupSource(directory: data.directory), data: data)
        let report = try await BackupRunner(repository: repository, source: source, modelregVersion: "test", jobs: 1)
            .run()
        let snapshot = try repository.snapshot(report.snapshot)
        #expect(snapshot.versions == 1)
        #expect(snapshot.blobs.count == 1)
        #expect(try RepositoryVerifier(repository: repository, readData: true).run().healthy)
    }

    @Test func restoreRefusesANonEmptyTargetUnlessItIsARegistryAndForced() async throws {
        let data = try TestData()
        try await data.publish("m", "1.0", ["w": bytes("one")])
        let repository = try BackupRepository.openOrCreate(data.url("repo").path)
        _ = try await backup(data, repository)

        let other = data.url("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: other.appendingPathComponent("notes.txt"))
        for force in [false, true] {
            await #expect(throws: RegistryError.self) {
                _ = try await Restorer(
                    repository: repository, snapshotID: nil, target: DataDirectory(other.path), force: force
                ).run()
            }
        }
        #expect(FileManager.default.fileExists(atPath: other.appendingPathComponent("notes.txt").path))

        let error = await #expect(throws: RegistryError.self) {
            _ = try await Restorer(repository: repository, snapshotID: nil, target: data.directory, force: false).run()
        }
        #expect(error?.code == .conflict)
        try Data("the admin token\n".utf8).write(to: data.directory.adminToken)
        let report = try await Restorer(
            repository: repository, snapshotID: nil, target: data.directory, force: true
        ).run()
        #expect(report.blobs == 1)
        #expect(try String(contentsOf: data.directory.adminToken, encoding: .utf8) == "the admin token\n")
    }

    @Test func aSecondWriterIsRefusedWhileTheLockIsHeld() async throws {
        let data = try TestData()
        let repository = try BackupRepository.openOrCreate(data.url("repo").path)
        let lock = try repository.lock(exclusive: true)
        await #expect(throws: RegistryError.self) { _ = try await backup(data, repository) }
        #expect(throws: RegistryError.self) {
            _ = try RepositoryVerifier(repository: repository, readData: false).run()
        }
        lock.unlock()
        _ = try await backup(data, repository)
    }

    @Test func verifyFindsMissingAndCorruptBlobs() async throws {
        let data = try TestData()
        try await data.publish("m", "1.0", ["a": bytes("a"), "b": bytes("b")])
        let repository = try BackupRepository.openOrCreate(data.url("repo").path)
        let snapshot = try repository.snapshot(try await backup(data, repository).snapshot)
        #expect(try RepositoryVerifier(repository: repository, readData: true).run().healthy)

        try TestData.flipBit(repository.blob(snapshot.blobs[0].digest), at: 100)
        #expect(try RepositoryVerifier(repository: repository, readData: false).run().healthy)
        let corrupt = try RepositoryVerifier(repository: repository, readData: true).run()
        #expect(corrupt.problems.count == 1)
        #expect(corrupt.problems[0].contains(snapshot.blobs[0].digest.description))

        try FileManager.default.removeItem(atPath: repository.blob(snapshot.blobs[1].digest))
        let missing = try RepositoryVerifier(repository: repository, readData: false).run()
        #expect(missing.problems.count == 1)
        #expect(missing.problems[0].contains("missing"))

        await #expect(throws: RegistryError.self) {
            _ = try await Restorer(
                repository: repository, snapshotID: nil, target: DataDirectory(data.url("r").path), force: false
            ).run()
        }
    }

    /// A repository written before exports holds the SQLite database in each snapshot: it still restores
    /// (through an export of that database, brought up to this schema), and the first new backup into it marks
    /// it format 2 so an older modelreg refuses it as a whole.
    @Test func aSnapshotHoldingADatabaseStillRestores() async throws {
        let data = try TestData()
        try await data.publish("m", "1.0", ["w": bytes("one"), "config.json": Array("{}".utf8)])
        _ = try await data.metadata.moveAlias(
            AliasMove(
                model: try ModelName("m"), alias: try AliasName("prod"),
                kind: .set(try VersionName("1.0"), variant: nil), actor: "test"))
        let root = data.url("old-repo")
        for directory in ["blobs/sha256", "snapshots", "tmp"] {
            try FileManager.default.createDirectory(
                at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        try Data(#"{"format":1}"#.utf8).write(to: root.appendingPathComponent("modelreg-backup.json"))
        let repository = try BackupRepository(opening: root.path)
        // What the backups of earlier versions did: SQLite's backup API into a file stored as a blob.
        let copy = data.url("copy.sqlite").path
        try DatabaseQueue(path: data.directory.database.path).backup(to: DatabaseQueue(path: copy))
        let database = try FileTree.hash(copy)
        try FileTree.install(copy, as: repository.blob(database.digest))
        let blobs = try await data.metadata.referencedBlobs().sorted().map { digest in
            let path = data.directory.blob(digest).path
            let temporary = repository.temporaryFile("blob")
            let entry = try FileTree.copy(from: path, to: temporary)
            try FileTree.install(temporary, as: repository.blob(digest))
            return entry
        }
        try Data(
            """
            {"id":"20261101T000000Z-0000abcd","time":"2026-11-01T00:00:00.000Z","modelregVersion":"0.9",
             "source":"old","schemaVersion":4,"database":{"digest":"\(database.digest)","size":\(database.size)},
             "blobs":[\(blobs.map { #"{"digest":"\#($0.digest)","size":\#($0.size)}"# }.joined(separator: ","))],
             "models":1,"versions":1,"variants":1}
            """.utf8
        ).write(to: root.appendingPathComponent("snapshots/20261101T000000Z-0000abcd.json"))
        #expect(try RepositoryVerifier(repository: repository, readData: true).run().healthy)

        let target = DataDirectory(data.url("restored").path)
        _ = try await Restorer(repository: repository, snapshotID: nil, target: target, force: false).run()
        let restored = try SQLiteMetadataStore(path: target.database.path)
        #expect(try await restored.exportMetadata() == data.metadata.exportMetadata())
        #expect(!FileManager.default.fileExists(atPath: target.restoreMarker.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.tmp.path).isEmpty)

        _ = try await backup(data, repository)
        #expect(try BackupRepository(opening: root.path).format == 2)
        let snapshots = try repository.allSnapshots()
        #expect(snapshots.count == 2)
        guard case .sqliteDatabase = snapshots[0].metadata, case .export = snapshots[1].metadata else {
            Issue.record("expected the old snapshot to keep its database and the new one to hold an export")
            return
        }
    }

    /// A damaged metadata export is refused before anything is put into the target, which stays unfinished.
    @Test func aCorruptMetadataExportIsRefused() async throws {
        let data = try TestData()
        try await data.publish("m", "1.0", ["w": bytes("one")])
        let repository = try BackupRepository.openOrCreate(data.url("repo").path)
        let snapshot = try repository.snapshot(try await backup(data, repository).snapshot)
        try TestData.flipBit(repository.blob(snapshot.metadata.blob.digest), at: 10)
        let target = DataDirectory(data.url("restored").path)
        let error = await #expect(throws: RegistryError.self) {
            _ = try await Restorer(repository: repository, snapshotID: nil, target: target, force: false).run()
        }
        #expect(error?.code == .integrity)
        #expect(error?.message.contains("metadata") == true)
        #expect(FileManager.default.fileExists(atPath: target.restoreMarker.path))
        #expect(!FileManager.default.fileExists(atPath: target.database.path))
    }

    @Test func aRepositoryIsOnlyCreatedInAnEmptyDirectory() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-repo-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: root.appendingPathComponent("file"))
        #expect(throws: RegistryError.self) { _ = try BackupRepository.openOrCreate(root.path) }
        #expect(throws: RegistryError.self) { _ = try BackupRepository(opening: root.path) }
    }
}
