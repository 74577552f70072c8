import Foundation
import ModelRegistryCore
import RegistryClient
import RegistryMaintenance

public struct SnapshotList: Codable, Sendable {
    public var snapshots: [Snapshot]
    public init(snapshots: [Snapshot]) { self.snapshots = snapshots }
}

/// How the CLI prints the reports of the maintenance that runs on the client's side: backups, their
/// repository, restores and repairs.
extension Presentation {
    public static func repair(_ report: RepairReport) -> String {
        var out = "\(report.missing) blobs missing; repaired \(report.repaired.count) from \(report.repository)"
        for digest in report.unavailable { out += "\n  not in the repository: \(digest)" }
        return out
    }

    public static func backup(_ report: BackupReport) -> String {
        """
        snapshot \(report.snapshot) saved in \(report.repository)
        \(report.blobs) blobs (\(ByteCount.format(report.bytes))); copied \(report.blobsCopied) new (\(ByteCount.format(report.bytesCopied))), metadata \(ByteCount.format(report.metadataBytes)), in \(String(format: "%.2f", report.seconds)) s
        """
    }

    public static func snapshots(_ snapshots: [Snapshot]) -> String {
        guard !snapshots.isEmpty else { return "no snapshots yet" }
        return table(
            ["ID", "TIME", "MODELS", "VERSIONS", "VARIANTS", "BLOBS", "SIZE", "SOURCE"],
            snapshots.map { snapshot in
                [
                    snapshot.id, snapshot.time, String(snapshot.models), String(snapshot.versions),
                    String(snapshot.variants),
                    String(snapshot.blobs.count), ByteCount.format(snapshot.blobBytes), snapshot.source,
                ]
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
