import Foundation
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

/// A range of a blob's bytes as buffers, read as the consumer asks for them: a slow reader (a client on a slow
/// link) holds back the reads instead of filling memory, and a store reads off the event loops.
public struct BlobBytes: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let nextBuffer: () async throws -> ByteBuffer?

        public mutating func next() async throws -> ByteBuffer? { try await nextBuffer() }
    }

    private let start: @Sendable () -> AsyncIterator

    /// The most bytes a store hands over in one buffer.
    public static let chunkLimit = 1 << 20

    /// `start` is called once an iteration, and returns what yields its buffers in order, then nil.
    public init(_ start: @escaping @Sendable () -> () async throws -> ByteBuffer?) {
        self.start = { AsyncIterator(nextBuffer: start()) }
    }

    public func makeAsyncIterator() -> AsyncIterator { start() }
}

/// Where blob bytes live. Content-addressed and immutable: a blob is only ever created whole from bytes that
/// hash to its digest (`put`, or committing an upload), and deleted whole.
///
/// Uploads are resumable, by any instance of the store that shares its storage (another replica, or this
/// process after a restart): bytes are appended at the offset the store reports, the digest is computed over
/// every byte as it arrives, and the hash state is kept with the upload.
///
/// A backend implements this protocol and passes `BlobStoreConformanceTests` (Tests/StoreConformanceTests).
public protocol BlobStore: Sendable {
    /// The blob's size, or nil when it is not stored.
    func info(_ digest: Digest) async throws(RegistryError) -> BlobInfo?
    /// Random access, for the parsers that read a file's header where they need it; they run on threads
    /// that may block, never on an event loop.
    func reader(_ digest: Digest) throws(RegistryError) -> any BlobReader
    /// The bytes of `range` (within the blob's size), streamed; throws `.notFound` for an unknown blob.
    func read(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobBytes
    /// Where a client may download the blob straight from the storage for the next `validFor`, for a store
    /// that can hand out such URLs (an object store's presigned URL); nil when the registry serves the bytes.
    func directDownloadURL(_ digest: Digest, validFor: Duration) async throws(RegistryError) -> URL?
    /// `range` of the blob (within its size) as an open file region, for a server that hands the bytes to the
    /// socket without reading them (`sendfile`); nil for a store whose blobs are not local files.
    func fileRegion(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobFileRegion?
    /// Stores `bytes` as a blob if they hash to `digest` and nothing when they do not (`.digestMismatch`).
    /// Bytes already stored are kept, and their stored time refreshed.
    func put<Bytes: AsyncSequence & Sendable>(_ bytes: Bytes, expecting digest: Digest) async throws -> BlobInfo
    where Bytes.Element == ByteBuffer
    /// Removes a blob; true when it was stored. With `cutoff`, only a blob last stored before it: one stored
    /// again since (an upload of the same bytes, which refreshes its time) is kept, whenever that upload
    /// lands, and false returned. Garbage collection deletes this way.
    func delete(_ digest: Digest, storedBefore cutoff: Date?) async throws(RegistryError) -> Bool
    /// Every stored blob, in digest order, with the time it was last stored (an upload of bytes already
    /// stored refreshes it, so garbage collection's grace period starts again).
    func list() async throws(RegistryError) -> [StoredBlob]
    /// Takes a blob out of service: never served again, kept aside until it is stored anew (`repair`).
    func quarantine(_ digest: Digest) async throws(RegistryError)
    /// The blobs in quarantine.
    func quarantined() async throws(RegistryError) -> [Digest]
    /// Drops the quarantined copies of blobs that are stored again.
    func releaseQuarantine(_ digests: [Digest]) async throws(RegistryError)
    /// Whether the store takes writes now (the readiness probe).
    func checkWritable() async throws(RegistryError)

    /// Starts an upload. With the digest its bytes are expected to hash to, an upload already started for that
    /// digest and not receiving bytes right now (its client was killed or lost its connection) is handed back
    /// instead, with the offset it reached, so those bytes are not sent again.
    func startUpload(expecting digest: Digest?) async throws(RegistryError) -> StartedUpload
    /// True when an upload started without its digest is copied to the digest's place at its commit, a second
    /// pass over every byte (an object store cannot rename): a client that can hash first should.
    var copiesUploadsWithoutDigest: Bool { get }
    /// Bytes received so far; throws `.notFound` for an unknown upload.
    func uploadOffset(_ id: UploadID) async throws(RegistryError) -> Int64
    /// Appends a stream of bytes at `offset`, which must equal the current offset. Returns the new offset.
    /// If the stream fails midway, the bytes received so far stay and the upload can be resumed. An upload
    /// receiving bytes on another request, anywhere, is refused with `.uploadBusy`.
    func append<Bytes: AsyncSequence>(_ id: UploadID, at offset: Int64, _ bytes: Bytes) async throws -> Int64
    where Bytes.Element == ByteBuffer
    /// Checks the digest of everything received and moves it into place. On a mismatch the upload is
    /// discarded and nothing is stored.
    func commitUpload(_ id: UploadID, expecting digest: Digest) async throws(RegistryError) -> BlobInfo
    func cancelUpload(_ id: UploadID) async throws(RegistryError)
    /// Removes every upload that received no byte since `cutoff` and is not receiving now; returns them.
    func removeStaleUploads(untouchedSince cutoff: Date) async throws(RegistryError) -> [UploadID]
}

extension BlobStore {
    public func delete(_ digest: Digest) async throws(RegistryError) -> Bool {
        try await delete(digest, storedBefore: nil)
    }

    /// `put` as an upload of one stream: for stores with nothing faster.
    public func putByUpload<Bytes: AsyncSequence & Sendable>(_ bytes: Bytes, expecting digest: Digest)
        async throws -> BlobInfo
    where Bytes.Element == ByteBuffer {
        let id = try await startUpload(expecting: nil).id
        do {
            _ = try await append(id, at: 0, bytes)
            return try await commitUpload(id, expecting: digest)
        } catch {
            try? await cancelUpload(id)
            throw error
        }
    }
}

/// A blob as a listing of the store shows it.
public struct StoredBlob: Sendable, Hashable {
    public var digest: Digest
    public var size: Int64
    public var stored: Date

    public init(digest: Digest, size: Int64, stored: Date) {
        self.digest = digest
        self.size = size
        self.stored = stored
    }
}

public struct StartedUpload: Sendable, Equatable {
    public var id: UploadID
    /// Bytes the upload already holds; the client continues from here.
    public var offset: Int64
    /// True when an earlier upload of the same digest was handed back.
    public var resumed: Bool

    public init(id: UploadID, offset: Int64, resumed: Bool) {
        self.id = id
        self.offset = offset
        self.resumed = resumed
    }
}

/// A blob named by digest, with its size.
public struct BlobEntry: Codable, Sendable, Hashable, Comparable {
    public var digest: Digest
    public var size: Int64

    public init(digest: Digest, size: Int64) {
        self.digest = digest
        self.size = size
    }

    public static func < (lhs: BlobEntry, rhs: BlobEntry) -> Bool { lhs.digest < rhs.digest }
}

/// The server-chosen name of an upload in progress: a lowercase UUID, checked before it becomes a path.
public struct UploadID: Hashable, Sendable, CustomStringConvertible {
    public let value: String

    public init() {
        value = UUID().uuidString.lowercased()
    }

    public init(_ text: some StringProtocol) throws(RegistryError) {
        guard let uuid = UUID(uuidString: String(text)), uuid.uuidString.lowercased() == text.lowercased(),
            text.utf8.allSatisfy({ $0 != UInt8(ascii: "/") })
        else {
            throw RegistryError(.notFound, "upload '\(text.prefix(80))' not found")
        }
        value = text.lowercased()
    }

    public var description: String { value }
}
