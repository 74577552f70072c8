import NIOCore

public struct BlobInfo: Hashable, Sendable {
    public var digest: Digest
    public var size: Int64

    public init(digest: Digest, size: Int64) {
        self.digest = digest
        self.size = size
    }
}

/// Random access to the bytes of one stored blob.
public protocol BlobReader: Sendable {
    var size: Int64 { get }
    /// Up to `maxLength` bytes starting at `offset`; empty at end of blob.
    func read(at offset: Int64, maxLength: Int) throws(RegistryError) -> ByteBuffer
}

/// Where blob bytes live. Content-addressed and immutable: a blob is only ever created whole by committing
/// an upload whose bytes hash to the expected digest, and deleted whole.
///
/// Uploads are resumable: bytes are appended at the offset the store reports, and the digest is computed
/// over every byte as it arrives.
public protocol BlobStore: Sendable {
    func info(_ digest: Digest) throws(RegistryError) -> BlobInfo?
    func reader(_ digest: Digest) throws(RegistryError) -> any BlobReader

    func createUpload() throws(RegistryError) -> UploadID
    /// Bytes received so far; throws `.notFound` for an unknown upload.
    func uploadOffset(_ id: UploadID) throws(RegistryError) -> Int64
    /// Appends a stream of bytes at `offset`, which must equal the current offset. Returns the new offset.
    /// If the stream fails midway, the bytes received so far stay and the upload can be resumed.
    func append<Bytes: AsyncSequence>(_ id: UploadID, at offset: Int64, _ bytes: Bytes) async throws -> Int64
        where Bytes.Element == ByteBuffer
    /// Checks the digest of everything received and moves it into place. On a mismatch the upload is
    /// discarded and nothing is stored.
    func commitUpload(_ id: UploadID, expecting digest: Digest) throws(RegistryError) -> BlobInfo
    func cancelUpload(_ id: UploadID) throws(RegistryError)
}
