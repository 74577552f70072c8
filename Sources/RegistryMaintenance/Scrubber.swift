import FileSystemBlobs
import FileSystemIO
import Foundation
import ModelRegistryCore
import RegistryAPI

/// Rehashes stored blobs and moves corrupt ones to `quarantine/`, out of the blob tree, so they are never
/// served again: a pull of a variant that needs one fails until `repair` restores it from a backup.
public struct Scrubber: Sendable {
    public let directory: DataDirectory
    /// The fraction of blob files to rehash, chosen at random: 1 checks every one, 0 only checks presence.
    public let sample: Double

    public init(directory: DataDirectory, sample: Double = 1) throws(RegistryError) {
        guard sample >= 0, sample <= 1 else {
            throw RegistryError(.invalidRequest, "sample \(sample) is not a fraction between 0 and 1")
        }
        self.directory = directory
        self.sample = sample
    }

    public func run() throws -> ScrubReport {
        let started = ContinuousClock.now
        let database = try RegistryDatabase.open(directory.database.path)
        let referenced = try database.read { db in try ManifestFileReferences().referencedDigests(db) }
        try database.close()
        let files = try FileTree.blobFiles(in: directory.blobs)
        var checked = 0
        var checkedBytes: Int64 = 0
        var corrupt: [Digest] = []
        for file in files where sample >= 1 || Double.random(in: 0..<1) < sample {
            let actual: BlobEntry
            do {
                actual = try FileTree.hash(file.path)
            } catch {
                // Deleted by a garbage collection since the listing: nothing to check.
                guard (try? FileTree.status(file.path)) != nil else { continue }
                throw error
            }
            checked += 1
            checkedBytes += actual.size
            if actual.digest != file.digest {
                try quarantine(file)
                corrupt.append(file.digest)
            }
        }
        let present = Set(files.map(\.digest)).subtracting(corrupt)
        try forgetRepaired(present)
        return ScrubReport(
            sample: sample,
            stored: files.count,
            checked: checked,
            checkedBytes: checkedBytes,
            corrupt: corrupt,
            missing: referenced.subtracting(present).sorted(),
            quarantined: try Self.quarantinedCount(directory),
            seconds: (ContinuousClock.now - started).seconds
        )
    }

    private func quarantine(_ file: BlobFile) throws(RegistryError) {
        try FileTree.createDirectory(directory.quarantine.path)
        try POSIXFile.rename(file.path, to: directory.quarantine.appendingPathComponent(file.digest.hex).path)
        try POSIXFile.syncDirectory(directory.quarantine.path)
        try POSIXFile.syncDirectory(directory.blobDirectory(file.digest).path)
    }

    /// A quarantined copy whose blob is stored again (by `repair`, or a new upload of the same bytes) has
    /// served its purpose: it is removed, so the quarantine counts only blobs still waiting for repair.
    private func forgetRepaired(_ present: Set<Digest>) throws(RegistryError) {
        var removed = false
        for name in try FileTree.entries(directory.quarantine.path) {
            guard let digest = try? Digest(parsing: Digest.prefix + name), present.contains(digest) else { continue }
            try POSIXFile.remove(directory.quarantine.appendingPathComponent(name).path)
            removed = true
        }
        if removed { try POSIXFile.syncDirectory(directory.quarantine.path) }
    }

    /// How many blobs sit in quarantine: exported in `/metrics`.
    public static func quarantinedCount(_ directory: DataDirectory) throws(RegistryError) -> Int {
        try FileTree.entries(directory.quarantine.path).count
    }
}
