import FileSystemBlobs
import FileSystemIO
import Foundation
import ModelRegistryCore
import SQLiteMetadata

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

/// Restores a snapshot through a registry's stores: the metadata read and checked first, then every blob put
/// into the blob store (which checks it against its digest), then the metadata imported in one transaction.
/// The metadata comes last, so an interrupted restore leaves no registry that looks complete (in a data
/// directory the restore marker says so until the end), and running it again finishes it.
public struct Restorer: Sendable {
    /// Where a snapshot goes.
    public enum Target: Sendable {
        /// A data directory: empty, or (with `force`) a registry's, which is replaced.
        case dataDirectory(DataDirectory, force: Bool)
        /// Stores of their own (PostgreSQL and S3), named in the report; the metadata store must hold no
        /// registry.
        case stores(blobs: any BlobStore, metadata: any MetadataStore, name: String)
    }

    public let repository: BackupRepository
    public let snapshotID: String?
    public let target: Target
    public let jobs: Int

    public init(
        repository: BackupRepository, snapshotID: String?, target: Target,
        jobs: Int = ProcessInfo.processInfo.activeProcessorCount
    ) {
        self.repository = repository
        self.snapshotID = snapshotID
        self.target = target
        self.jobs = max(1, jobs)
    }

    public init(repository: BackupRepository, snapshotID: String?, target: DataDirectory, force: Bool) {
        self.init(repository: repository, snapshotID: snapshotID, target: .dataDirectory(target, force: force))
    }

    public func run(log: @Sendable (String) -> Void = { _ in }) async throws -> RestoreReport {
        let started = ContinuousClock.now
        let lock = try repository.lock(exclusive: false)
        defer { lock.unlock() }
        let snapshot = try repository.snapshot(snapshotID)
        let name: String
        switch target {
        case .dataDirectory(let directory, let force):
            try await restore(snapshot, into: directory, force: force, log: log)
            name = directory.root.path
        case .stores(let blobs, let metadata, let storesName):
            let existing = try await metadata.exportMetadata()
            guard existing.models.isEmpty, existing.tokens.isEmpty, existing.audit.isEmpty else {
                throw RegistryError(
                    .conflict,
                    "\(storesName) holds a registry (\(existing.models.count) models): restore into an empty database")
            }
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
                "modelreg-restore-\(UUID().uuidString.lowercased())")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let export = try await repository.metadata(of: snapshot, scratch: scratch)
            try await restoreBlobs(snapshot.blobs, into: blobs, log: log)
            try await importMetadata(export, of: snapshot, into: metadata)
            name = storesName
        }
        return RestoreReport(
            snapshot: snapshot.id, data: name, blobs: snapshot.blobs.count, bytes: snapshot.blobBytes,
            models: snapshot.models, versions: snapshot.versions, variants: snapshot.variants,
            seconds: (ContinuousClock.now - started).seconds
        )
    }

    /// The snapshot's blobs recorded and its export imported: the last step, once every blob is stored.
    private func importMetadata(_ export: MetadataExport, of snapshot: Snapshot, into metadata: any MetadataStore)
        async throws
    {
        try await metadata.recordBlobs(
            snapshot.blobs.map { StoredBlob(digest: $0.digest, size: $0.size, stored: Date()) })
        try await metadata.importMetadata(export)
    }

    private func restore(
        _ snapshot: Snapshot, into target: DataDirectory, force: Bool, log: @Sendable (String) -> Void
    ) async throws {
        // Held like a server's, so no server starts on the directory meanwhile and none runs on it now.
        let claimed = try target.claim(doing: "restoring into it")
        defer { claimed.unlock() }
        try prepareTarget(target, force: force)
        try target.create()
        try FileTree.writeAtomically(
            Array("restore of snapshot \(snapshot.id) started \(Timestamp.now())\n".utf8),
            to: target.restoreMarker.path,
            temporary: target.tmp.appendingPathComponent("restore-marker-\(UUID().uuidString.lowercased())").path
        )
        let export = try await repository.metadata(of: snapshot, scratch: target.tmp)
        try await restoreBlobs(snapshot.blobs, into: FileSystemBlobStore(directory: target), log: log)
        try await importMetadata(export, of: snapshot, into: try SQLiteMetadataStore(path: target.database.path))
        try POSIXFile.remove(target.restoreMarker.path)
    }

    /// An empty (or missing) directory is used as it is; `--force` replaces a registry data directory, or
    /// one an earlier restore left unfinished, and nothing else is ever overwritten. Its `admin.token`
    /// stays: secrets are not in backups, and the token still works when the snapshot comes from the same
    /// registry. So does `server.lock`, which this restore holds.
    private func prepareTarget(_ target: DataDirectory, force: Bool) throws(RegistryError) {
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

    /// Puts `jobs` blobs at once (one a core): hashing, not the disk, is what bounds a restore.
    private func restoreBlobs(_ blobs: [BlobEntry], into store: any BlobStore, log: @Sendable (String) -> Void)
        async throws
    {
        let repository = self.repository
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func start() {
                guard next < blobs.count else { return }
                let blob = blobs[next]
                next += 1
                group.addTask { try await Self.restore(blob, from: repository, into: store) }
            }
            for _ in 0..<jobs { start() }
            var done = 0
            while try await group.next() != nil {
                done += 1
                if done % 100 == 0 { log("restored \(done)/\(blobs.count) blobs") }
                start()
            }
        }
    }

    private static func restore(_ blob: BlobEntry, from repository: BackupRepository, into store: any BlobStore)
        async throws
    {
        let path = repository.blob(blob.digest)
        guard let size = try POSIXFile.regularFileSize(path) else {
            throw RegistryError(
                .integrity,
                "the repository lacks blob \(blob.digest): run `modelreg backup verify`; restore an older snapshot")
        }
        let file = try POSIXFile.openForReading(path)
        defer { try? file.close() }
        do {
            _ = try await store.put(file.bytes(0..<size), expecting: blob.digest)
        } catch let error as RegistryError where error.code == .digestMismatch {
            throw RegistryError(
                .integrity,
                "the repository's copy of \(blob.digest) is corrupt (\(error.message)): restore an older snapshot")
        }
    }
}
