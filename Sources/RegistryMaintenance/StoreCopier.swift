import Foundation
import ModelRegistryCore

/// Copies a registry from one pair of stores into another (`modelreg migrate`): every blob, through the
/// target's `put`, which checks its digest, then the metadata as one import. Resumable: a blob the target
/// holds with its size is not copied again, and the metadata goes last, in one transaction, so a run that
/// stopped anywhere is finished by running it again, and a run after a finished one copies nothing.
public struct StoreCopier: Sendable {
    public let sourceBlobs: any BlobStore
    public let sourceMetadata: any MetadataStore
    public let targetBlobs: any BlobStore
    public let targetMetadata: any MetadataStore

    public init(
        sourceBlobs: any BlobStore, sourceMetadata: any MetadataStore, targetBlobs: any BlobStore,
        targetMetadata: any MetadataStore
    ) {
        self.sourceBlobs = sourceBlobs
        self.sourceMetadata = sourceMetadata
        self.targetBlobs = targetBlobs
        self.targetMetadata = targetMetadata
    }

    public func run(log: @Sendable (String) -> Void) async throws -> CopyReport {
        let export = try await sourceMetadata.exportMetadata()
        let existing = try await targetMetadata.exportMetadata()
        let imports = existing != export
        if imports, !(existing.models.isEmpty && existing.tokens.isEmpty && existing.audit.isEmpty) {
            throw RegistryError(
                .conflict,
                "the target metadata store holds another registry (\(existing.models.count) models, \(existing.tokens.count) tokens): migrate into an empty database"
            )
        }
        let blobs = try await sourceBlobs.list()
        var report = CopyReport(blobs: blobs.count)
        for blob in blobs {
            if try await targetBlobs.info(blob.digest)?.size == blob.size { continue }
            let bytes = try await sourceBlobs.read(blob.digest, range: 0..<blob.size)
            do {
                _ = try await targetBlobs.put(bytes, expecting: blob.digest)
            } catch let error as RegistryError where error.code == .digestMismatch {
                throw RegistryError(
                    .integrity,
                    "the source's copy of blob \(blob.digest) is corrupt (\(error.message)): run `modelreg verify` and `modelreg repair` on it, then migrate again"
                )
            }
            report.blobsCopied += 1
            report.bytesCopied += blob.size
            log("copied \(blob.digest) (\(blob.size) bytes)")
        }
        try await targetMetadata.recordBlobs(blobs)
        if imports {
            try await targetMetadata.importMetadata(export)
            report.metadataImported = true
            log(
                "imported \(export.models.count) models, \(export.tokens.count) tokens, \(export.audit.count) audit entries"
            )
        }
        report.models = export.models.count
        return report
    }
}

/// What a copy did: all zero and false for a run after a finished one.
public struct CopyReport: Codable, Sendable, Equatable {
    public var blobs: Int
    public var blobsCopied = 0
    public var bytesCopied: Int64 = 0
    public var models = 0
    public var metadataImported = false

    public init(blobs: Int) {
        self.blobs = blobs
    }
}
