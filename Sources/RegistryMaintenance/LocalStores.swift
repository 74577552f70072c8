import FileSystemBlobs
import ModelRegistryCore
import SQLiteMetadata

/// The stores of a data directory, for the maintenance commands that work on it with `--data` instead of
/// through a server.
public struct LocalStores: Sendable {
    public let blobs: FileSystemBlobStore
    public let metadata: SQLiteMetadataStore

    /// Opens the stores of an existing registry (`SQLiteMetadataStore.openExisting`). `readingOnly` leaves the
    /// schema as it is, for a dry run or a backup that may look at a directory a server is running on.
    public init(_ directory: DataDirectory, readingOnly: Bool = false) throws {
        metadata = try SQLiteMetadataStore.openExisting(path: directory.database.path, migrating: !readingOnly)
        blobs = FileSystemBlobStore(directory: directory)
    }
}
