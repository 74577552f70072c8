import FileSystemBlobs
import ModelRegistryCore
import SQLiteMetadata

/// The stores of a data directory, for the maintenance commands that work on it with `--data` instead of
/// through a server.
public struct LocalStores: Sendable {
    public let blobs: FileSystemBlobStore
    public let metadata: SQLiteMetadataStore

    /// Opens the stores of an existing registry: the database is checked as `RegistryDatabase.open` checks it
    /// (it exists and its schema is not newer than this binary) before the store brings it up to date, so a
    /// mistyped `--data` never creates a registry.
    public init(_ directory: DataDirectory) throws {
        try RegistryDatabase.open(directory.database.path).close()
        metadata = try SQLiteMetadataStore(path: directory.database.path)
        blobs = FileSystemBlobStore(directory: directory)
    }
}
