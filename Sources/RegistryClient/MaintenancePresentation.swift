import Foundation
import ModelRegistryCore
import RegistryMaintenance

public struct SnapshotList: Codable, Sendable {
    public var snapshots: [Snapshot]
    public init(snapshots: [Snapshot]) { self.snapshots = snapshots }
}

extension Presentation {
    public static func garbageCollection(_ report: GarbageCollectionReport) -> String {
        let verb = report.dryRun ? "would delete" : "deleted"
        var out = "\(verb) \(report.deleted.count) blobs, \(ByteCount.format(report.freedBytes)) (\(report.freedBytes) bytes)\n"
        out += "scanned \(report.scanned) blobs: \(report.referenced) referenced, \(report.recent) unreferenced but younger than the "
        out += "\(report.graceSeconds) s grace period, in \(String(format: "%.2f", report.seconds)) s"
        for blob in report.deleted.prefix(50) { out += "\n  \(blob.digest)  \(ByteCount.format(blob.size))" }
        if report.deleted.count > 50 { out += "\n  … and \(report.deleted.count - 50) more (--json lists all)" }
        return out
    }

    public static func scrub(_ report: ScrubReport) -> String {
        var out = "checked \(report.checked) of \(report.stored) blobs (\(ByteCount.format(report.checkedBytes))) in \(String(format: "%.2f", report.seconds)) s"
        out += "; \(report.quarantined) in quarantine"
        for digest in report.corrupt { out += "\n  corrupt, quarantined: \(digest)" }
        for digest in report.missing { out += "\n  referenced but missing: \(digest)" }
        if report.healthy { out += "\nall blobs are intact" }
        return out
    }

    public static func repair(_ report: RepairReport) -> String {
        var out = "\(report.missing) blobs missing; repaired \(report.repaired.count) from \(report.repository)"
        for digest in report.unavailable { out += "\n  not in the repository: \(digest)" }
        return out
    }

    public static func backup(_ report: BackupReport) -> String {
        """
        snapshot \(report.snapshot) saved in \(report.repository)
        \(report.blobs) blobs (\(ByteCount.format(report.bytes))); copied \(report.blobsCopied) new (\(ByteCount.format(report.bytesCopied))), database \(ByteCount.format(report.databaseBytes)), in \(String(format: "%.2f", report.seconds)) s
        """
    }

    public static func snapshots(_ snapshots: [Snapshot]) -> String {
        guard !snapshots.isEmpty else { return "no snapshots yet" }
        return table(
            ["ID", "TIME", "MODELS", "VERSIONS", "VARIANTS", "BLOBS", "SIZE", "SOURCE"],
            snapshots.map { snapshot in
                [snapshot.id, snapshot.time, String(snapshot.models), String(snapshot.versions), String(snapshot.variants),
                 String(snapshot.blobs.count), ByteCount.format(snapshot.blobBytes), snapshot.source]
            }
        )
    }

    public static func repositoryCheck(_ report: RepositoryCheckReport) -> String {
        var out = "\(report.snapshots) snapshots, \(report.blobs) blobs"
        if report.readData { out += ", \(ByteCount.format(report.bytesRead)) rehashed" }
        out += " in \(String(format: "%.2f", report.seconds)) s"
        for problem in report.problems { out += "\n  \(problem)" }
        if report.healthy { out += "\nno problems found" }
        return out
    }

    public static func prune(_ report: PruneReport) -> String {
        var out = report.dryRun ? "would keep:" : "kept:"
        for kept in report.kept { out += "\n  \(kept.id)  \(kept.reasons.joined(separator: ","))" }
        out += report.dryRun ? "\nwould remove:" : "\nremoved:"
        for id in report.removed { out += "\n  \(id)" }
        out += "\n\(report.blobsRemoved) blobs no longer needed, \(ByteCount.format(report.bytesFreed))"
        return out
    }

    public static func restore(_ report: RestoreReport) -> String {
        """
        restored snapshot \(report.snapshot) into \(report.data)
        \(report.models) models, \(report.versions) versions, \(report.variants) variants; \(report.blobs) blobs (\(ByteCount.format(report.bytes))), verified, in \(String(format: "%.2f", report.seconds)) s
        """
    }
}
