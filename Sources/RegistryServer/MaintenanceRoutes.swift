import Foundation
import Hummingbird
import ModelRegistryCore
import RegistryMaintenance

/// Admin maintenance: garbage collection, the integrity scrub, and the metadata export that remote backups
/// read. Each works through the stores, so requests keep being served meanwhile.
struct MaintenanceRoutes {
    let registry: Registry

    var routes: [Route] {
        [
            Route(.post, "/v1/admin/gc") { request, context in
                try registry.authorize(context, .admin)
                let query = request.uri.queryParameters
                let dryRun = try Self.flag(query.get("dry_run"), "dry_run")
                let grace =
                    try query.get("grace").map { text throws(RegistryError) in try DurationText.seconds(text) }
                    ?? GarbageCollector.defaultGraceSeconds
                let collector = GarbageCollector(
                    blobs: registry.blobs, metadata: registry.metadata, graceSeconds: grace)
                let report = try await collector.run(dryRun: dryRun)
                if !dryRun { registry.metrics.garbageCollected(blobs: report.deleted.count, bytes: report.freedBytes) }
                context.logger.notice(
                    "garbage collection",
                    metadata: [
                        "dry_run": .stringConvertible(dryRun), "deleted": .stringConvertible(report.deleted.count),
                        "freed_bytes": .stringConvertible(report.freedBytes), "by": .string(context.identity.actor),
                    ])
                return JSONBody.response(report)
            },
            Route(.post, "/v1/admin/verify") { request, context in
                try registry.authorize(context, .admin)
                let text = request.uri.queryParameters.get("sample") ?? "1"
                guard let sample = Double(text) else {
                    throw RegistryError(
                        .invalidRequest, "sample '\(text.prefix(40))' is not a fraction between 0 and 1")
                }
                let scrubber = try Scrubber(blobs: registry.blobs, references: registry.metadata, sample: sample)
                let report = try await scrubber.run()
                registry.metrics.corruptBlobsFound(report.corrupt.count)
                if !report.healthy {
                    context.logger.error(
                        "integrity scrub found damage",
                        metadata: [
                            "corrupt": .string(report.corrupt.map(\.description).joined(separator: ",")),
                            "missing": .stringConvertible(report.missing.count),
                        ])
                }
                return JSONBody.response(report)
            },
            Route(.get, "/v1/admin/export") { _, context in
                try registry.authorize(context, .admin)
                let bytes = try await registry.metadata.exportMetadata().encoded()
                return Response(
                    status: .ok,
                    headers: [
                        .contentType: MetadataExport.mediaType, .contentLength: String(bytes.count),
                        .modelregDigest: Digest.of(bytes).description,
                    ],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
                )
            },
        ]
    }

    private static func flag(_ text: String?, _ name: String) throws(RegistryError) -> Bool {
        // Exactly the document's boolean: `?dry_run=` or `?dry_run=1` would be guesses at what was meant.
        switch text {
        case nil, "false": return false
        case "true": return true
        default: throw RegistryError(.invalidRequest, "\(name) must be true or false, not '\(text!.prefix(40))'")
        }
    }
}
