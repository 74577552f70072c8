import FileSystemIO
import Foundation
import ModelRegistryCore

/// What one backup did.
public struct BackupReport: Codable, Sendable {
    public var snapshot: String
    public var repository: String
    public var blobs: Int
    public var bytes: Int64
    public var blobsCopied: Int
    public var bytesCopied: Int64
    public var metadataBytes: Int64
    public var seconds: Double
}

/// Takes one snapshot of a registry into a repository.
///
/// Order: the metadata export (one read transaction of the store) is stored as a blob; the blobs its manifests
/// reference are read from the export itself, so the snapshot is exactly what that metadata needs; each
/// missing blob is copied into `tmp/`, checked against its digest, synced and renamed into place; only then
/// is the snapshot file written (synced, renamed, directory synced). An interrupted backup leaves no
/// snapshot, only blobs that the next backup reuses and files in `tmp/` that it clears. A blob that vanishes
/// from the registry meanwhile (its version deleted and garbage-collected) makes the backup start over from a
/// new export, keeping what it copied.
public struct BackupRunner: Sendable {
    public let repository: BackupRepository
    public let source: any BackupSource
    public let modelregVersion: String
    public let jobs: Int

    public init(repository: BackupRepository, source: any BackupSource, modelregVersion: String, jobs: Int = 4) {
        self.repository = repository
        self.source = source
        self.modelregVersion = modelregVersion
        self.jobs = max(1, jobs)
    }

    public func run(log: @Sendable (String) -> Void = { _ in }) async throws -> BackupReport {
        let started = ContinuousClock.now
        let lock = try repository.lock(exclusive: true)
        defer { lock.unlock() }
        try repository.clearTemporaryFiles()
        var attempt = 1
        while true {
            let time = Date()
            let (metadata, contents) = try await exportMetadata(log: log)
            let blobs = try contents.referencedBlobs()
            var missing: [BlobEntry] = []
            for blob in blobs where try !repository.has(blob) { missing.append(blob) }
            let copied: Int64
            do {
                copied = try await copy(missing, log: log)
            } catch let error as RegistryError where error.code == .notFound && attempt < Self.attempts {
                // A version deleted and collected since the export: a new export no longer needs its blobs,
                // and the blobs copied so far stay in the repository.
                log("\(error.message); exporting the metadata again")
                attempt += 1
                continue
            }
            return try finish(
                time: time, metadata: (metadata, contents), blobs: blobs, copied: (missing.count, copied),
                started: started)
        }
    }

    static let attempts = 3

    /// The metadata export, stored as a blob of the repository (an unchanged registry's exports are the same
    /// bytes, so they share one), and the blobs it needs.
    private func exportMetadata(log: @Sendable (String) -> Void) async throws -> (BlobEntry, MetadataExport) {
        let export = try await source.exportMetadata()
        let bytes = try export.encoded()
        let stored = BlobEntry(digest: Digest.of(bytes), size: Int64(bytes.count))
        if try !repository.has(stored) {
            try FileTree.writeAtomically(
                bytes, to: repository.blob(stored.digest), temporary: repository.temporaryFile("metadata"))
        }
        log("metadata export: \(stored.size) bytes, \(export.models.count) models")
        return (stored, export)
    }

    /// Writes the snapshot file, once everything it names is durable in the repository.
    private func finish(
        time: Date, metadata: (stored: BlobEntry, export: MetadataExport), blobs: [BlobEntry],
        copied: (blobs: Int, bytes: Int64), started: ContinuousClock.Instant
    ) throws -> BackupReport {
        let snapshot = Snapshot(
            id: BackupRepository.newSnapshotID(time),
            time: Timestamp.format(time),
            modelregVersion: modelregVersion,
            source: source.description,
            metadata: .export(metadata.stored, format: metadata.export.format),
            blobs: blobs,
            models: metadata.export.models.count,
            versions: metadata.export.versionCount,
            variants: metadata.export.variantCount
        )
        try repository.writeSnapshot(snapshot)
        return BackupReport(
            snapshot: snapshot.id,
            repository: repository.root.path,
            blobs: snapshot.blobs.count,
            bytes: snapshot.blobBytes,
            blobsCopied: copied.blobs,
            bytesCopied: copied.bytes,
            metadataBytes: metadata.stored.size,
            seconds: (ContinuousClock.now - started).seconds
        )
    }

    /// Copies blobs, `jobs` at a time, each verified against its digest before it enters the repository.
    private func copy(_ blobs: [BlobEntry], log: @Sendable (String) -> Void) async throws -> Int64 {
        let repository = self.repository
        let source = self.source
        var total: Int64 = 0
        try await withThrowingTaskGroup(of: Int64.self) { group in
            var next = 0
            func start() {
                guard next < blobs.count else { return }
                let blob = blobs[next]
                next += 1
                group.addTask {
                    let temporary = repository.temporaryFile("blob")
                    let copied = try await source.copyBlob(blob, to: temporary)
                    guard copied == blob else {
                        try? POSIXFile.remove(temporary)
                        throw RegistryError(
                            .integrity,
                            "blob \(blob.digest) read from \(source.description) hashes to \(copied.digest) (\(copied.size) bytes, expected \(blob.size)): "
                                + "the registry's copy is corrupt; run `modelreg verify`, then `modelreg repair --from` an older backup"
                        )
                    }
                    try FileTree.install(temporary, as: repository.blob(blob.digest))
                    return blob.size
                }
            }
            for _ in 0..<jobs { start() }
            var done = 0
            while let size = try await group.next() {
                total += size
                done += 1
                if done % 100 == 0 { log("copied \(done)/\(blobs.count) blobs") }
                start()
            }
        }
        return total
    }

}
