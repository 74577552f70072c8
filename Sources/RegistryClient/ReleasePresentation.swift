import ModelRegistryCore
import RegistryAPI

/// Text for the release commands: version listings, alias history, the audit log, deprecation notices.
extension Presentation {
    /// Newest first, one line a version.
    public static func versions(_ detail: ModelDetail) -> String {
        guard !detail.versions.isEmpty else { return "\(detail.name) has no versions" }
        return table(
            ["VERSION", "CREATED", "VARIANTS", "SIZE", "ALIASES", "STATUS"],
            detail.versions.map { version in
                [
                    version.name.value, version.createdAt, version.variants.map(\.name.value).joined(separator: ","),
                    ByteCount.format(version.size), version.aliases.map { "@\($0)" }.joined(separator: ","),
                    status(version.deprecation),
                ]
            }
        )
    }

    static func status(_ deprecation: Deprecation?) -> String {
        guard let deprecation else { return "-" }
        return "deprecated" + (deprecation.reason.map { ": \($0)" } ?? "")
    }

    public static func history(_ history: AliasHistory) -> String {
        guard !history.entries.isEmpty else { return "\(history.model)@\(history.alias) has never been set" }
        return table(
            ["WHEN", "WHO", "ACTION", "FROM", "TO"],
            history.entries.map { entry in
                [
                    entry.at, entry.actor, entry.action.rawValue,
                    entry.fromVersion.map { target($0, entry.fromVariant) } ?? "-",
                    target(entry.toVersion, entry.toVariant),
                ]
            }
        )
    }

    private static func target(_ version: VersionName, _ variant: VariantName?) -> String {
        version.value + (variant.map { " (\($0))" } ?? "")
    }

    public static func moved(_ model: ModelName, _ target: AliasTarget) -> String {
        "\(model)@\(target.name) -> \(model):\(target.version)" + (target.variant.map { " variant \($0)" } ?? "")
    }

    public static func audit(_ entries: [AuditEntry]) -> String {
        guard !entries.isEmpty else { return "no audit entries" }
        return table(
            ["WHEN", "WHO", "ACTION", "TARGET", "DETAIL"],
            entries.map { [$0.at, $0.actor, $0.action.rawValue, $0.target, $0.detail ?? "-"] }
        )
    }

    public static func deprecationWarning(_ resolved: ResolvedManifest, reason: String) -> String {
        "warning: \(resolved.model):\(resolved.version) is deprecated (\(reason)); pin a newer version or use @latest"
    }

    public static func fetch(_ report: FetchReport) -> String {
        let what = "\(report.model):\(report.version) variant \(report.variant) (\(report.layout) layout)"
        if report.alreadyInPlace { return "\(what) already in \(report.destination)\ndigest: \(report.digest)" }
        return """
            fetched \(what) into \(report.destination)
            digest: \(report.digest)
            \(report.files) files, \(ByteCount.format(report.bytes)), verified: \(ByteCount.format(report.bytesDownloaded)) downloaded, \
            \(ByteCount.format(report.bytesFromCache)) from the node cache, \(ByteCount.format(report.bytesResumed)) kept from an interrupted run, \
            in \(String(format: "%.2f", report.seconds)) s
            """
    }

    public static func deleted(_ deleted: DeletedVersion) -> String {
        "deleted \(deleted.model):\(deleted.version) (variants \(deleted.variants.map(\.value).joined(separator: ", ")), "
            + "\(ByteCount.format(deleted.size))); blobs no other version uses are reclaimed by garbage collection"
    }
}
