import FileSystemBlobs
import ModelRegistryCore
import PostgresMetadata
import S3Blobs
import SQLiteMetadata

/// The stores a server's configuration names, opened: what `serve` and `migrate` run on.
public enum RegistryStores {
    /// The metadata store, its schema brought up to date (replicas starting at once on one PostgreSQL
    /// database apply each migration once), with the tokens it checked kept until the store says they changed.
    public static func metadata(_ location: MetadataLocation, directory: DataDirectory) async throws
        -> any MetadataStore
    {
        switch location {
        case .dataDirectory:
            return KeptReadsMetadataStore(try SQLiteMetadataStore(path: directory.database.path))
        case .postgres(let location):
            let store = try PostgresMetadataStore(location)
            try await store.migrate()
            return KeptReadsMetadataStore(store)
        }
    }

    /// The blob store. An S3 bucket keeps no state of uploads that span requests: their records go to the
    /// metadata store (PostgreSQL, which every replica shares, or the embedded SQLite of one server).
    public static func blobs(_ location: BlobLocation, directory: DataDirectory, metadata: any MetadataStore) throws
        -> any BlobStore
    {
        switch location {
        case .dataDirectory:
            let blobs = FileSystemBlobStore(directory: directory)
            try blobs.restoreInterruptedDeletions()
            return blobs
        case .s3(let location, let credentials):
            let store = (metadata as? KeptReadsMetadataStore)?.base ?? metadata
            guard let uploads = store as? any UploadRecordStore else {
                throw RegistryError(.internalError, "the metadata store cannot keep the records of S3 uploads")
            }
            return S3BlobStore(
                client: S3Client(location: location, credentials: credentials), location: location, uploads: uploads)
        }
    }
}
