import Foundation
import ModelRegistryCore
import RegistryAPI

extension Presentation {
    public static func garbageCollection(_ report: GarbageCollectionReport) -> String {
        let verb = report.dryRun ? "would delete" : "deleted"
        var out =
            "\(verb) \(report.deleted.count) blobs, \(ByteCount.format(report.freedBytes)) (\(report.freedBytes) bytes)\n"
        out +=
            "scanned \(report.scanned) blobs: \(report.referenced) referenced, \(report.recent) unreferenced but younger than the "
        out += "\(report.graceSeconds) s grace period, in \(String(format: "%.2f", report.seconds)) s"
        for blob in report.deleted.prefix(50) { out += "\n  \(blob.digest)  \(ByteCount.format(blob.size))" }
        if report.deleted.count > 50 { out += "\n  … and \(report.deleted.count - 50) more (--json lists all)" }
        return out
    }

    public static func scrub(_ report: ScrubReport) -> String {
        var out =
            "checked \(report.checked) of \(report.stored) blobs (\(ByteCount.format(report.checkedBytes))) in \(String(format: "%.2f", report.seconds)) s"
        out += "; \(report.quarantined) in quarantine"
        for digest in report.corrupt { out += "\n  corrupt, quarantined: \(digest)" }
        for digest in report.missing { out += "\n  referenced but missing: \(digest)" }
        if report.healthy { out += "\nall blobs are intact" }
        return out
    }
}
