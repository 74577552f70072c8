import FileSystemBlobs
import FileSystemIO
import Foundation
import GRDB
import ModelRegistryCore
import RegistryAPI

/// Mark and sweep of the blob store.
///
/// Mark: every digest any `BlobReferenceSource` names. Sweep: an unreferenced blob file whose modification
/// time is older than the grace period is deleted, in batches, each inside an IMMEDIATE write transaction
/// that first asks every source again, re-reads the file's time, and deletes the blob's record with the file.
/// Publishing requires the records of its blobs inside its own write transaction, so the two serialize on
/// SQLite's write lock: either the manifest is committed first and the blob is kept, or the blob is gone
/// first and the publish answers `BLOBS_MISSING` (the client uploads it again). The grace period keeps the blobs of pushes that
/// have uploaded but not yet published.
public struct GarbageCollector: Sendable {
    public static let defaultGraceSeconds: Int64 = 3600
    static let batchSize = 64

    public let directory: DataDirectory
    public let graceSeconds: Int64
    public let sources: [any BlobReferenceSource]

    public init(
        directory: DataDirectory, graceSeconds: Int64 = defaultGraceSeconds,
        sources: [any BlobReferenceSource] = BlobReferences.all
    ) {
        self.directory = directory
        self.graceSeconds = graceSeconds
        self.sources = sources
    }

    public func run(dryRun: Bool) throws -> GarbageCollectionReport {
        let started = ContinuousClock.now
        let cutoff = Date().addingTimeInterval(-Double(graceSeconds))
        let database = try RegistryDatabase.open(directory.database.path)
        defer { try? database.close() }
        let files = try ContentAddressedTree.files(in: directory.blobs)
        let sources = self.sources
        let marked = try database.read { db in
            try sources.reduce(into: Set<Digest>()) { marked, source in
                marked.formUnion(try source.referencedDigests(db))
            }
        }
        let unreferenced = files.filter { !marked.contains($0.digest) }
        let eligible = unreferenced.filter { $0.modified <= cutoff }
        var deleted: [BlobEntry] = []
        if dryRun {
            deleted = eligible.map { BlobEntry(digest: $0.digest, size: $0.size) }
        } else {
            var start = 0
            while start < eligible.count {
                let batch = Array(eligible[start..<min(start + Self.batchSize, eligible.count)])
                start += batch.count
                let swept = try database.write { db in try Self.sweep(batch, cutoff: cutoff, sources: sources, db) }
                for directory in Set(swept.map { self.directory.blobDirectory($0.digest).path }) {
                    try POSIXFile.syncDirectory(directory)
                }
                deleted += swept
            }
        }
        return GarbageCollectionReport(
            dryRun: dryRun,
            graceSeconds: graceSeconds,
            scanned: files.count,
            referenced: files.count - unreferenced.count,
            recent: unreferenced.count - eligible.count,
            deleted: deleted,
            freedBytes: deleted.reduce(0) { $0 + $1.size },
            seconds: (ContinuousClock.now - started).seconds
        )
    }

    /// Deletes the blobs of a batch that are still unreferenced and still older than the cutoff.
    private static func sweep(_ batch: [BlobFile], cutoff: Date, sources: [any BlobReferenceSource], _ db: Database)
        throws -> [BlobEntry]
    {
        var swept: [BlobEntry] = []
        for file in batch {
            if try sources.contains(where: { source in try source.references(file.digest, db) }) { continue }
            // A push may have uploaded the same bytes again since the mark, which refreshes the time.
            guard let status = try POSIXFile.status(file.path), status.modified <= cutoff else { continue }
            try POSIXFile.remove(file.path)
            try db.execute(sql: "DELETE FROM blobs WHERE digest = ?", arguments: [file.digest.description])
            swept.append(BlobEntry(digest: file.digest, size: status.size))
        }
        return swept
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
