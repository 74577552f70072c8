import FileSystemBlobs
import Foundation
import ModelRegistryCore

/// Where a backup reads a registry from: its stores, or a running server (`RemoteBackupSource` in
/// MaintenanceClient).
public protocol BackupSource: Sendable {
    /// Names the registry in snapshots and messages.
    var description: String { get }
    /// Everything the registry's metadata holds, as of one moment.
    func exportMetadata() async throws -> MetadataExport
    /// Writes the blob's bytes to the new file `path`, synced, and returns the digest and size of what it wrote.
    func copyBlob(_ blob: BlobEntry, to path: String) async throws -> BlobEntry
}

/// A registry's stores, read directly: a data directory on this machine (`LocalStores`), with or without a
/// server running on it, since the export is one read transaction and blobs never change.
public struct StoreBackupSource: BackupSource {
    public let description: String
    let blobs: any BlobStore
    let metadata: any MetadataStore

    public init(description: String, blobs: any BlobStore, metadata: any MetadataStore) {
        self.description = description
        self.blobs = blobs
        self.metadata = metadata
    }

    /// The data directory's stores, opened without migrating: a backup writes nothing into the registry.
    public init(directory: DataDirectory) throws {
        let stores = try LocalStores(directory, readingOnly: true)
        self.init(description: directory.root.path, blobs: stores.blobs, metadata: stores.metadata)
    }

    public func exportMetadata() async throws -> MetadataExport {
        do {
            try await metadata.checkReady()
        } catch let error as RegistryError {
            throw RegistryError(
                error.code,
                "\(error.message): back up with the modelreg version that serves \(description), or start this version's server on it once"
            )
        }
        return try await metadata.exportMetadata()
    }

    public func copyBlob(_ blob: BlobEntry, to path: String) async throws -> BlobEntry {
        guard try await blobs.info(blob.digest) != nil else {
            throw RegistryError(
                .notFound,
                "blob \(blob.digest) is referenced but not stored in \(description): run `modelreg verify` and `modelreg repair`"
            )
        }
        return try await FileTree.write(try await blobs.read(blob.digest, range: 0..<blob.size), to: path)
    }
}
