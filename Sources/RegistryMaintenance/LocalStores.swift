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
    /// mistyped `--data` never creates a registry. `readingOnly` leaves the schema as it is, for a dry run
    /// that may look at a directory a server is running on.
    public init(_ directory: DataDirectory, readingOnly: Bool = false) throws {
        try RegistryDatabase.open(directory.database.path).close()
        metadata = try SQLiteMetadataStore(path: directory.database.path, migrating: !readingOnly)
        blobs = FileSystemBlobStore(directory: directory)
    }
}
