import Foundation
import ModelFormats
import ModelRegistryCore
import RegistryAPI

/// What the CLI prints: plain tables for people, and JSON (`--json`) for scripts.
public enum Presentation {
    public static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }

    /// Left-aligned columns separated by two spaces.
    public static func table(_ header: [String], _ rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    public static func models(_ models: [ModelSummary]) -> String {
        guard !models.isEmpty else { return "no models yet: push one with `modelreg push DIR NAME:VERSION`" }
        return table(
            ["MODEL", "VERSIONS", "LATEST", "SIZE", "ALIASES"],
            models.map { model in
                [
                    model.name.value, String(model.versionCount), model.latestVersion?.value ?? "-",
                    ByteCount.format(model.size), aliasList(model.aliases),
                ]
            }
        )
    }

    public static func model(_ detail: ModelDetail) -> String {
        var out = "model \(detail.name) (created \(detail.createdAt))\n\n"
        out += table(
            ["VERSION", "VARIANT", "FORMAT", "SIZE", "FILES", "DIGEST", "CREATED", "ALIASES", "STATUS"],
            detail.versions.flatMap { version in
                version.variants.map { variant in
                    [
                        version.name.value, variant.name.value, variant.format.rawValue, ByteCount.format(variant.size),
                        String(variant.fileCount), variant.digest.description, variant.createdAt,
                        version.aliases.map(\.value).joined(separator: ","), status(version.deprecation),
                    ]
                }
            }
        )
        if !detail.aliases.isEmpty {
            out += "\n\n" + aliases(detail.aliases)
        }
        return out
    }

    public static func version(_ name: ModelName, _ version: VersionSummary) -> String {
        var out = "\(name):\(version.name) (created \(version.createdAt))"
        if !version.aliases.isEmpty { out += ", aliases: \(version.aliases.map(\.value).joined(separator: ", "))" }
        if version.deprecation != nil { out += "\n" + status(version.deprecation) }
        out += "\n\n"
        out += table(
            ["VARIANT", "FORMAT", "SIZE", "FILES", "DIGEST"],
            version.variants.map {
                [
                    $0.name.value, $0.format.rawValue, ByteCount.format($0.size), String($0.fileCount),
                    $0.digest.description,
                ]
            }
        )
        return out
    }

    public static func manifest(_ shown: ShownManifest) -> String {
        let resolved = shown.resolved
        let manifest = resolved.manifest
        var out = """
            \(resolved.model):\(resolved.version) variant \(resolved.variant)\(resolved.deprecation.map { " DEPRECATED: \($0)" } ?? "")
            digest:   \(resolved.digest)
            format:   \(manifest.format.rawValue)
            size:     \(ByteCount.format(manifest.totalSize)) in \(manifest.files.count) files
            """
        if manifest.quantization != nil { out += "\nquantization: \(quantization(manifest.quantization))" }
        if let metadata = manifest.metadata { out += "\n" + modelSummary(metadata) }
        out +=
            "\n\n"
            + table(
                ["FILE", "SIZE", "DIGEST"],
                manifest.files.map {
                    [$0.path.value + ($0.executable ? " (x)" : ""), ByteCount.format($0.size), $0.digest.description]
                }
            )
        if let profile = shown.servingProfile {
            out += "\n\nserving profile (\(ServingProfile.fileName)):\n" + servingProfile(profile)
        }
        if !shown.images.isEmpty {
            out +=
                "\n\ncache images (modelreg fetch):\n"
                + table(
                    ["LAYOUT", "STATE", "SIZE", "DIGEST"],
                    shown.images.map {
                        [
                            $0.layout, $0.state.rawValue + ($0.error.map { ": \($0)" } ?? ""),
                            ByteCount.format($0.size), $0.digest?.description ?? "-",
                        ]
                    }
                )
        }
        return out
    }

    /// A serving profile's parts, one a line, as `show` and `plan` print them.
    public static func servingProfile(_ profile: ServingProfile) -> String {
        var lines: [String] = []
        if let version = profile.vllmVersion { lines.append("  vLLM:        \(version)") }
        if !profile.arguments.isEmpty {
            lines.append("  arguments:   " + profile.arguments.map(shellWord).joined(separator: " "))
        }
        for (name, value) in profile.environment.sorted(by: { $0.key < $1.key }) {
            lines.append("  environment: \(name)=\(shellWord(value))")
        }
        if let warmup = profile.warmup { lines.append("  warm-up:     POST \(warmup.path) \(warmup.body)") }
        return lines.isEmpty ? "  (empty)" : lines.joined(separator: "\n")
    }

    public static func aliases(_ aliases: [AliasTarget]) -> String {
        table(
            ["ALIAS", "VERSION", "VARIANT", "UPDATED", "BY"],
            aliases.map { [$0.name.value, $0.version.value, $0.variant?.value ?? "-", $0.updatedAt, $0.updatedBy] }
        )
    }

    public static func tokens(_ tokens: [TokenRecord]) -> String {
        table(
            ["NAME", "SCOPE", "CREATED", "REVOKED"],
            tokens.map { [$0.name.value, $0.scope.rawValue, $0.createdAt, $0.revokedAt ?? "-"] }
        )
    }

    public static func push(_ report: PushReport) -> String {
        let state = report.created ? "published" : "already published (unchanged)"
        return """
            \(report.reference) variant \(report.variant) \(state)
            digest: \(report.digest)
            \(report.files) files; \(report.blobsUploaded) blobs uploaded, \(report.blobsSkipped) already stored
            sent \(ByteCount.format(report.bytesSent)) (\(report.bytesSent) bytes), skipped \(ByteCount.format(report.bytesSkipped)) (\(report.bytesSkipped) bytes) in \(String(format: "%.2f", report.seconds)) s
            """
    }

    public static func pull(_ report: PullReport) -> String {
        """
        pulled \(report.model):\(report.version) variant \(report.variant) into \(report.destination)
        digest: \(report.digest)
        \(report.files) files, \(ByteCount.format(report.bytes)), verified, in \(String(format: "%.2f", report.seconds)) s
        """
    }

    private static func aliasList(_ aliases: [AliasTarget]) -> String {
        aliases.isEmpty ? "-" : aliases.map { "\($0.name)=\($0.version)" }.joined(separator: ",")
    }
}

/// The process exit status for each kind of failure; the README's "Exit codes" table lists them.
public enum ExitStatus: Int32, Sendable {
    case success = 0
    case failure = 1
    case notFound = 3
    case unauthorized = 4
    case integrity = 5
    case network = 6
    case conflict = 7
    /// A disk is full: the registry's (HTTP 507, nothing was stored) or the local one a pull writes to.
    case insufficientStorage = 8
    /// The registry's TLS certificate is not trusted, or the TLS handshake failed.
    case tls = 9
    case usage = 64
    /// sysexits' EX_DATAERR: the model's files or manifest are malformed.
    case invalidData = 65

    public static func of(_ error: any Error) -> ExitStatus {
        if let error = error as? ClientError {
            switch error {
            case .network: return .network
            case .tls: return .tls
            }
        }
        guard let error = error as? RegistryError else { return .failure }
        switch error.code {
        case .invalidName, .invalidReference, .invalidDigest, .invalidPath, .invalidRequest: return .usage
        case .notFound: return .notFound
        case .unauthorized, .forbidden: return .unauthorized
        case .invalidModelFile, .invalidManifest: return .invalidData
        case .digestMismatch, .integrity: return .integrity
        case .conflict, .aliasMoved, .ambiguousVariant, .uploadBusy: return .conflict
        case .insufficientStorage: return .insufficientStorage
        default: return .failure
        }
    }
}

/// A variant as `show` prints it: the resolved manifest and its cache images. The JSON is the resolved
/// manifest's, with an `images` key added.
public struct ShownManifest: Encodable, Sendable {
    public var resolved: ResolvedManifest
    public var images: [CacheImageStatus]
    /// Its `modelreg-serving.json`, read: what `modelreg plan` adds to vLLM's command line.
    public var servingProfile: ServingProfile?

    public init(resolved: ResolvedManifest, images: [CacheImageStatus], servingProfile: ServingProfile? = nil) {
        self.resolved = resolved
        self.images = images
        self.servingProfile = servingProfile
    }

    private enum Keys: String, CodingKey { case images, servingProfile }

    public func encode(to encoder: any Encoder) throws {
        try resolved.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(images, forKey: .images)
        try container.encodeIfPresent(servingProfile, forKey: .servingProfile)
    }
}
