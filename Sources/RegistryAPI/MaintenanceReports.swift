import ModelRegistryCore

/// What a garbage collection found and removed (or, in a dry run, would remove).
public struct GarbageCollectionReport: Codable, Sendable, Equatable {
    public var dryRun: Bool
    public var graceSeconds: Int64
    /// Blobs the blob store listed when the collection started.
    public var scanned: Int
    /// Of those, the ones a manifest names.
    public var referenced: Int
    /// Unreferenced blobs kept because they are younger than the grace period (uploads of pushes in flight).
    public var recent: Int
    public var deleted: [BlobEntry]
    public var freedBytes: Int64
    public var seconds: Double

    public init(
        dryRun: Bool, graceSeconds: Int64, scanned: Int, referenced: Int, recent: Int, deleted: [BlobEntry],
        freedBytes: Int64,
        seconds: Double
    ) {
        self.dryRun = dryRun
        self.graceSeconds = graceSeconds
        self.scanned = scanned
        self.referenced = referenced
        self.recent = recent
        self.deleted = deleted
        self.freedBytes = freedBytes
        self.seconds = seconds
    }
}

/// What an integrity scrub of the blob store found.
public struct ScrubReport: Codable, Sendable, Equatable {
    public var sample: Double
    /// Blob files present when the scrub started.
    public var stored: Int
    /// Blob files rehashed.
    public var checked: Int
    public var checkedBytes: Int64
    /// Blobs whose bytes did not hash to their name; moved to quarantine by this scrub.
    public var corrupt: [Digest]
    /// Referenced by a manifest but not stored (quarantined earlier, or lost): `repair` brings them back.
    public var missing: [Digest]
    /// Files in quarantine after the scrub.
    public var quarantined: Int
    public var seconds: Double

    public init(
        sample: Double, stored: Int, checked: Int, checkedBytes: Int64, corrupt: [Digest], missing: [Digest],
        quarantined: Int,
        seconds: Double
    ) {
        self.sample = sample
        self.stored = stored
        self.checked = checked
        self.checkedBytes = checkedBytes
        self.corrupt = corrupt
        self.missing = missing
        self.quarantined = quarantined
        self.seconds = seconds
    }

    public var healthy: Bool { corrupt.isEmpty && missing.isEmpty }
}
