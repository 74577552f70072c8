import FileSystemBlobs
import FileSystemIO
import Foundation
import ModelRegistryCore
import SQLiteMetadata
import Synchronization

/// What a restore wrote.
public struct RestoreReport: Codable, Sendable {
    public var snapshot: String
    public var data: String
    public var blobs: Int
    public var bytes: Int64
    public var models: Int
    public var versions: Int
    public var variants: Int
    public var seconds: Double
}

/// Restores a snapshot into a data directory: every blob copied and checked against its digest, then the
/// database (checked too), then the schema brought up to this binary's migrations. The database comes
/// last, so an interrupted restore leaves no registry that looks complete.
public struct Restorer: Sendable {
    public let repository: BackupRepository
    public let snapshotID: String?
    public let target: DataDirectory
    public let force: Bool

    public init(repository: BackupRepository, snapshotID: String?, target: DataDirectory, force: Bool) {
        self.repository = repository
        self.snapshotID = snapshotID
        self.target = target
        self.force = force
    }

    public func run(log: @Sendable (String) -> Void = { _ in }) throws -> RestoreReport {
        let started = ContinuousClock.now
        let lock = try repository.lock(exclusive: false)
        defer { lock.unlock() }
        let snapshot = try repository.snapshot(snapshotID)
        // Held like a server's, so no server starts on the directory meanwhile and none runs on it now.
        let claimed = try target.claim(doing: "restoring into it")
        defer { claimed.unlock() }
        try prepareTarget()
        try target.create()
        try FileTree.writeAtomically(
            Array("restore of snapshot \(snapshot.id) started \(Timestamp.now())\n".utf8),
            to: target.restoreMarker.path,
            temporary: target.tmp.appendingPathComponent("restore-marker-\(UUID().uuidString.lowercased())").path
        )
        try restoreBlobs(snapshot.blobs, log: log)
        try restore(snapshot.database, to: target.database.path)
        _ = try SQLiteMetadataStore(path: target.database.path)
        try POSIXFile.remove(target.restoreMarker.path)
        return RestoreReport(
            snapshot: snapshot.id, data: target.root.path, blobs: snapshot.blobs.count, bytes: snapshot.blobBytes,
            models: snapshot.models, versions: snapshot.versions, variants: snapshot.variants,
            seconds: (ContinuousClock.now - started).seconds
        )
    }

    /// An empty (or missing) directory is used as it is; `--force` replaces a registry data directory, or
    /// one an earlier restore left unfinished, and nothing else is ever overwritten. Its `admin.token`
    /// stays: secrets are not in backups, and the token still works when the snapshot comes from the same
    /// registry. So does `server.lock`, which this restore holds.
    private func prepareTarget() throws(RegistryError) {
        let root = target.root.path
        let lock = target.serverLock.lastPathComponent
        let entries = try POSIXFile.entries(root).filter { $0 != lock }
        guard !entries.isEmpty else { return }
        guard force else {
            throw RegistryError(
                .conflict,
                "\(root) is not empty: restore into an empty directory, or pass --force to replace the registry in it")
        }
        guard
            entries.contains(target.database.lastPathComponent)
                || entries.contains(target.restoreMarker.lastPathComponent)
        else {
            throw RegistryError(
                .conflict,
                "\(root) is not a modelreg data directory (it has no registry.sqlite and no unfinished restore): --force only replaces a registry; choose an empty directory"
            )
        }
        try FileTree.removeContents(of: root, keeping: [target.adminToken.lastPathComponent, lock])
    }

    /// Copies the blobs on every core at once: hashing, not the disk, is what bounds a restore.
    private func restoreBlobs(_ blobs: [BlobEntry], log: @Sendable (String) -> Void) throws(RegistryError) {
        let failure = Mutex<RegistryError?>(nil)
        let restored = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: blobs.count) { index in
            guard failure.withLock({ $0 == nil }) else { return }
            do {
                try restore(blobs[index], to: target.blob(blobs[index].digest).path)
            } catch {
                failure.withLock { $0 = $0 ?? (error as? RegistryError ?? RegistryError(.storageFailure, "\(error)")) }
                return
            }
            let count = restored.add(1, ordering: .relaxed).newValue
            if count % 100 == 0 { log("restored \(count)/\(blobs.count) blobs") }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    private func restore(_ blob: BlobEntry, to path: String) throws(RegistryError) {
        let source = repository.blob(blob.digest)
        guard try POSIXFile.status(source) != nil else {
            throw RegistryError(
                .integrity,
                "the repository lacks blob \(blob.digest): run `modelreg backup verify`; restore an older snapshot")
        }
        let temporary = target.tmp.appendingPathComponent("restore-\(UUID().uuidString.lowercased())").path
        let copied = try FileTree.copy(from: source, to: temporary)
        guard copied == blob else {
            try? POSIXFile.remove(temporary)
            throw RegistryError(
                .integrity,
                "the repository's copy of \(blob.digest) is corrupt (it hashes to \(copied.digest)): restore an older snapshot"
            )
        }
        try FileTree.install(temporary, as: path)
    }
}
