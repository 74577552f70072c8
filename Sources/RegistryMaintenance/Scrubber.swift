import FileSystemBlobs
import Foundation
import ModelRegistryCore
import RegistryAPI

/// Rehashes stored blobs and quarantines corrupt ones through the blob store, so they are never served again:
/// a pull of a variant that needs one fails until `repair` restores it from a backup.
public struct Scrubber: Sendable {
    public let blobs: any BlobStore
    /// What the manifests reference, which must be stored.
    public let references: any BlobReferenceStore
    /// The fraction of blobs to rehash, chosen at random: 1 checks every one, 0 only checks presence.
    public let sample: Double

    public init(blobs: any BlobStore, references: any BlobReferenceStore, sample: Double = 1) throws(RegistryError) {
        guard sample >= 0, sample <= 1 else {
            throw RegistryError(.invalidRequest, "sample \(sample) is not a fraction between 0 and 1")
        }
        self.blobs = blobs
        self.references = references
        self.sample = sample
    }

    public func run() async throws -> ScrubReport {
        let started = ContinuousClock.now
        let referenced = try await references.referencedBlobs()
        let stored = try await blobs.list()
        var checked = 0
        var checkedBytes: Int64 = 0
        var corrupt: [Digest] = []
        for blob in stored where sample >= 1 || Double.random(in: 0..<1) < sample {
            let actual: (digest: Digest, size: Int64)
            do {
                actual = try await hash(blob)
            } catch let error as RegistryError where error.code == .notFound {
                // Deleted by a garbage collection since the listing: nothing to check.
                continue
            }
            checked += 1
            checkedBytes += actual.size
            if actual.digest != blob.digest {
                try await blobs.quarantine(blob.digest)
                corrupt.append(blob.digest)
            }
        }
        let present = Set(stored.map(\.digest)).subtracting(corrupt)
        // A quarantined copy whose blob is stored again (by `repair`, or a new upload of the same bytes) has
        // served its purpose: the quarantine counts only blobs still waiting for repair.
        let inQuarantine = try await blobs.quarantined()
        let repaired = inQuarantine.filter(present.contains)
        try await blobs.releaseQuarantine(repaired)
        return ScrubReport(
            sample: sample,
            stored: stored.count,
            checked: checked,
            checkedBytes: checkedBytes,
            corrupt: corrupt,
            missing: referenced.subtracting(present).sorted(),
            quarantined: inQuarantine.count - repaired.count,
            seconds: (ContinuousClock.now - started).seconds
        )
    }

    /// The digest and size of what the store holds under a blob's name.
    private func hash(_ blob: StoredBlob) async throws -> (digest: Digest, size: Int64) {
        var hasher = ContentHasher()
        var size: Int64 = 0
        for try await chunk in try await blobs.read(blob.digest, range: 0..<blob.size) {
            chunk.withUnsafeReadableBytes { hasher.update($0) }
            size += Int64(chunk.readableBytes)
        }
        return (hasher.finalize(), size)
    }
}
