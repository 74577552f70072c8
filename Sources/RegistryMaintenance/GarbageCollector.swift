import Foundation
import ModelRegistryCore
import RegistryAPI

/// Mark, claim and sweep of the blob store, through the stores.
///
/// Mark: the blobs the store lists, less those a manifest names (`referencedBlobs`); those stored before the
/// grace period are candidates. Claim: in batches, the metadata store drops the record of each candidate it
/// finds, inside that transaction, still unreferenced and recorded before the grace period; a publish
/// requires its blobs' records inside its own transaction, so either the manifest is committed first and the
/// blob is kept, or the claim comes first and the publish answers `BLOBS_MISSING` (the client uploads the
/// blob again). Sweep: each claimed blob is deleted from the blob store only if it was not stored again
/// since the grace period began (an upload of the same bytes refreshes its time); one that was is recorded
/// again. The grace period keeps the blobs of pushes that have uploaded but not yet published.
public struct GarbageCollector: Sendable {
    public static let defaultGraceSeconds: Int64 = 3600
    static let batchSize = 64

    public let blobs: any BlobStore
    public let metadata: any MetadataStore
    public let graceSeconds: Int64

    public init(blobs: any BlobStore, metadata: any MetadataStore, graceSeconds: Int64 = defaultGraceSeconds) {
        self.blobs = blobs
        self.metadata = metadata
        self.graceSeconds = graceSeconds
    }

    public func run(dryRun: Bool) async throws -> GarbageCollectionReport {
        let started = ContinuousClock.now
        let cutoff = Date().addingTimeInterval(-Double(graceSeconds))
        let stored = try await blobs.list()
        let referenced = try await metadata.referencedBlobs()
        let unreferenced = stored.filter { !referenced.contains($0.digest) }
        let eligible = unreferenced.filter { $0.stored < cutoff }
        var deleted: [BlobEntry] = []
        if dryRun {
            deleted = eligible.map { BlobEntry(digest: $0.digest, size: $0.size) }
        } else {
            let sizes = Dictionary(uniqueKeysWithValues: eligible.map { ($0.digest, $0.size) })
            var start = 0
            while start < eligible.count {
                let batch = eligible[start..<min(start + Self.batchSize, eligible.count)].map(\.digest)
                start += batch.count
                for digest in try await metadata.claimUnreferencedBlobs(batch, recordedBefore: cutoff) {
                    if try await blobs.delete(digest, storedBefore: cutoff) {
                        deleted.append(BlobEntry(digest: digest, size: sizes[digest] ?? 0))
                    } else if let info = try await blobs.info(digest) {
                        // Stored again since the mark: its upload records it too, perhaps before this claim.
                        try await metadata.recordBlob(info)
                    }
                }
            }
        }
        return GarbageCollectionReport(
            dryRun: dryRun,
            graceSeconds: graceSeconds,
            scanned: stored.count,
            referenced: stored.count - unreferenced.count,
            recent: unreferenced.count - eligible.count,
            deleted: deleted,
            freedBytes: deleted.reduce(0) { $0 + $1.size },
            seconds: (ContinuousClock.now - started).seconds
        )
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
