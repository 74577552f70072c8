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
            repository: repository, source: LocalBackupSource(directory: data.directory), modelregVersion: "test"
        ).run()
    }

    /// Every row of every table, for comparing two databases.
    func rows(_ path: String) throws -> [String: [[String]]] {
        try RegistryDatabase.open(path).read { db in
            var result: [String: [[String]]] = [:]
            for table in [
                "models", "versions", "variants", "manifest_files", "aliases", "alias_history", "tokens",
                "deleted_versions", "audit_log",
            ] {
                result[table] = try Row.fetchAll(db, sql: "SELECT * FROM \(table) ORDER BY 1, 2").map { row in
                    row.databaseValues.map(\.description)
                }
            }
            return result
        }
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
        let report = try Restorer(repository: repository, snapshotID: nil, target: target, force: false).run()
        #expect(report.snapshot == third.snapshot)
        #expect(report.models == 2)
        #expect(try rows(target.database.path) == rows(data.directory.database.path))
        let original = try ContentAddressedTree.files(in: data.directory.blobs).map(\.digest)
        #expect(try ContentAddressedTree.files(in: target.blobs).map(\.digest) == original)
        let restored = try SQLiteMetadataStore(path: target.database.path)
        #expect(try await restored.listModels() == data.metadata.listModels())
        #expect(try await restored.tokens() == data.metadata.tokens())

        let older = DataDirectory(data.url("older").path)
        let olderReport = try Restorer(
            repository: repository, snapshotID: String(first.snapshot.prefix(30)), target: older, force: false
        ).run()
        #expect(olderReport.snapshot == first.snapshot)
        #expect(try ContentAddressedTree.files(in: older.blobs).count == 3)
    }

    /// Deletes a version and collects its blobs the first time the backup copies a blob.
    final class DeletingSource: BackupSource {
        let local: LocalBackupSource
        let data: TestData
        let deleted = Mutex(false)

        init(local: LocalBackupSource, data: TestData) {
            self.local = local
            self.data = data
        }

        var description: String { local.description }

        func snapshotDatabase(to path: String) async throws { try await local.snapshotDatabase(to: path) }

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
        let source = DeletingSource(local: LocalBackupSource(directory: data.directory), data: data)
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
            #expect(throws: RegistryError.self) {
                _ = try Restorer(
                    repository: repository, snapshotID: nil, target: DataDirectory(other.path), force: force
                ).run()
            }
        }
        #expect(FileManager.default.fileExists(atPath: other.appendingPathComponent("notes.txt").path))

        let error = #expect(throws: RegistryError.self) {
            _ = try Restorer(repository: repository, snapshotID: nil, target: data.directory, force: false).run()
        }
        #expect(error?.code == .conflict)
        try Data("the admin token\n".utf8).write(to: data.directory.adminToken)
        let report = try Restorer(repository: repository, snapshotID: nil, target: data.directory, force: true).run()
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

        #expect(throws: RegistryError.self) {
            _ = try Restorer(
                repository: repository, snapshotID: nil, target: DataDirectory(data.url("r").path), force: false
            ).run()
        }
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
