import FileSystemBlobs
import FileSystemIO
import Foundation
import ModelRegistryCore

/// Which snapshots to keep, as restic reads `--keep-last`, `--keep-daily` and `--keep-weekly`: the newest N;
/// the newest snapshot of each of the N most recent days (UTC) that have one; the same for ISO weeks. A
/// snapshot kept by any rule stays.
public struct RetentionPolicy: Codable, Sendable, Equatable {
    public var keepLast: Int
    public var keepDaily: Int
    public var keepWeekly: Int

    public init(keepLast: Int = 0, keepDaily: Int = 0, keepWeekly: Int = 0) throws(RegistryError) {
        guard keepLast >= 0, keepDaily >= 0, keepWeekly >= 0 else {
            throw RegistryError(.invalidRequest, "--keep-last, --keep-daily and --keep-weekly take counts of 0 or more")
        }
        guard keepLast + keepDaily + keepWeekly > 0 else {
            throw RegistryError(
                .invalidRequest,
                "prune needs --keep-last, --keep-daily or --keep-weekly: it would remove every snapshot")
        }
        self.keepLast = keepLast
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
    }

    /// The kept snapshots' ids, each with the rules that keep it.
    public func keep(_ snapshots: [Snapshot]) -> [String: [String]] {
        let newestFirst = snapshots.sorted { ($0.time, $0.id) > ($1.time, $1.id) }
        var reasons: [String: [String]] = [:]
        for snapshot in newestFirst.prefix(keepLast) { reasons[snapshot.id, default: []].append("last") }
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let rules: [(String, Int, (Date) -> String)] = [
            (
                "daily", keepDaily,
                { date in
                    let c = calendar.dateComponents([.year, .month, .day], from: date)
                    return "\(c.year!)-\(c.month!)-\(c.day!)"
                }
            ),
            (
                "weekly", keepWeekly,
                { date in
                    let c = calendar.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
                    return "\(c.yearForWeekOfYear!)-W\(c.weekOfYear!)"
                }
            ),
        ]
        for (rule, count, bucket) in rules where count > 0 {
            var seen = Set<String>()
            for snapshot in newestFirst {
                guard seen.count < count else { break }
                if seen.insert(bucket(snapshot.date)).inserted { reasons[snapshot.id, default: []].append(rule) }
            }
        }
        return reasons
    }
}

/// What `backup prune` removed (or, in a dry run, would remove).
public struct PruneReport: Codable, Sendable {
    public struct Kept: Codable, Sendable {
        public var id: String
        public var time: String
        public var reasons: [String]
    }

    public var dryRun: Bool
    public var kept: [Kept]
    public var removed: [String]
    public var blobsRemoved: Int
    public var bytesFreed: Int64
}

/// Applies a retention policy: removes the snapshots it does not keep, then the blobs no kept snapshot needs.
public struct Pruner: Sendable {
    public let repository: BackupRepository
    public let policy: RetentionPolicy

    public init(repository: BackupRepository, policy: RetentionPolicy) {
        self.repository = repository
        self.policy = policy
    }

    public func run(dryRun: Bool) throws -> PruneReport {
        let lock = try repository.lock(exclusive: true)
        defer { lock.unlock() }
        let snapshots = try repository.allSnapshots()
        let keep = policy.keep(snapshots)
        let kept = snapshots.filter { keep[$0.id] != nil }
        let removed = snapshots.filter { keep[$0.id] == nil }
        var needed = Set<Digest>()
        for snapshot in kept {
            needed.insert(snapshot.metadata.blob.digest)
            for blob in snapshot.blobs { needed.insert(blob.digest) }
        }
        let garbage = try ContentAddressedTree.files(in: repository.blobs).filter { !needed.contains($0.digest) }
        if !dryRun {
            // Snapshot files go first, so a crash midway never leaves a snapshot whose blobs are gone.
            for snapshot in removed { try POSIXFile.remove(repository.snapshotFile(snapshot.id)) }
            try POSIXFile.syncDirectory(repository.snapshots.path)
            for file in garbage { try POSIXFile.remove(file.path) }
            for directory in Set(garbage.map { ($0.path as NSString).deletingLastPathComponent }) {
                try POSIXFile.syncDirectory(directory)
            }
            try repository.clearTemporaryFiles()
        }
        return PruneReport(
            dryRun: dryRun,
            kept: kept.reversed().map { PruneReport.Kept(id: $0.id, time: $0.time, reasons: keep[$0.id] ?? []) },
            removed: removed.reversed().map(\.id),
            blobsRemoved: garbage.count,
            bytesFreed: garbage.reduce(0) { $0 + $1.size }
        )
    }
}
