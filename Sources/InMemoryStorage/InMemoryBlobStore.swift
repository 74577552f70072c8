import Foundation
import ModelRegistryCore
import NIOCore
import Synchronization

/// Blobs and uploads held in memory: the reference backend of the `BlobStore` conformance suite and the store
/// of the server's route tests. Instances made with the same `Storage` share it, as replicas share a bucket,
/// and an upload's hash state lives in the storage as saved bytes, as a networked backend keeps it.
public final class InMemoryBlobStore: BlobStore {
    /// What instances of the store share.
    public final class Storage: Sendable {
        fileprivate let state = Mutex(State())

        public init() {}
    }

    fileprivate struct State {
        var blobs: [Digest: Blob] = [:]
        var quarantine: [Digest: Blob] = [:]
        var uploads: [UploadID: Upload] = [:]
    }

    fileprivate struct Blob {
        var bytes: ByteBuffer
        var stored: Date
    }

    fileprivate struct Upload {
        var bytes = ByteBuffer()
        var expected: Digest?
        var hashState = ContentHasher().savedState
        var touched = Date()
        var receiving = false
    }

    private let storage: Storage

    public init(storage: Storage = Storage()) {
        self.storage = storage
    }

    public func info(_ digest: Digest) async throws(RegistryError) -> BlobInfo? {
        storage.state.withLock { $0.blobs[digest] }.map {
            BlobInfo(digest: digest, size: Int64($0.bytes.readableBytes))
        }
    }

    public func reader(_ digest: Digest) throws(RegistryError) -> any BlobReader {
        guard let blob = storage.state.withLock({ $0.blobs[digest] }) else {
            throw RegistryError.notFound("blob \(digest)")
        }
        return BufferReader(bytes: blob.bytes)
    }

    public func read(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobBytes {
        guard let blob = storage.state.withLock({ $0.blobs[digest] }) else {
            throw RegistryError.notFound("blob \(digest)")
        }
        let size = Int64(blob.bytes.readableBytes)
        guard range.lowerBound >= 0, range.upperBound <= size else {
            throw RegistryError(.integrity, "blob \(digest) holds \(size) bytes, not the \(range.upperBound) asked for")
        }
        let bytes = blob.bytes
        return BlobBytes {
            var offset = Int(range.lowerBound)
            return {
                guard offset < Int(range.upperBound) else { return nil }
                let length = min(BlobBytes.chunkLimit, Int(range.upperBound) - offset)
                defer { offset += length }
                return bytes.getSlice(at: bytes.readerIndex + offset, length: length)
            }
        }
    }

    /// Not local files: the registry streams the bytes.
    public func fileRegion(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobFileRegion? {
        nil
    }

    public func directDownloadURL(_ digest: Digest, validFor: Duration) async throws(RegistryError) -> URL? { nil }

    public func put<Bytes: AsyncSequence & Sendable>(_ bytes: Bytes, expecting digest: Digest) async throws -> BlobInfo
    where Bytes.Element == ByteBuffer {
        try await putByUpload(bytes, expecting: digest)
    }

    public func delete(_ digest: Digest, storedBefore cutoff: Date?) async throws(RegistryError) -> Bool {
        storage.state.withLock { state in
            guard let blob = state.blobs[digest], cutoff.map({ blob.stored < $0 }) ?? true else { return false }
            state.blobs.removeValue(forKey: digest)
            return true
        }
    }

    public func list() async throws(RegistryError) -> [StoredBlob] {
        storage.state.withLock { state in
            state.blobs.map {
                StoredBlob(digest: $0.key, size: Int64($0.value.bytes.readableBytes), stored: $0.value.stored)
            }
        }.sorted { $0.digest < $1.digest }
    }

    public func quarantine(_ digest: Digest) async throws(RegistryError) {
        try storage.state.withLock { state throws(RegistryError) in
            guard let blob = state.blobs.removeValue(forKey: digest) else {
                throw RegistryError.notFound("blob \(digest)")
            }
            state.quarantine[digest] = blob
        }
    }

    public func quarantined() async throws(RegistryError) -> [Digest] {
        storage.state.withLock { $0.quarantine.keys.sorted() }
    }

    public func releaseQuarantine(_ digests: [Digest]) async throws(RegistryError) {
        storage.state.withLock { state in
            for digest in digests { state.quarantine.removeValue(forKey: digest) }
        }
    }

    public func checkWritable() async throws(RegistryError) {}

    public let copiesUploadsWithoutDigest = false

    public func startUpload(expecting digest: Digest?) async throws(RegistryError) -> StartedUpload {
        storage.state.withLock { state in
            if let digest {
                let waiting = state.uploads.filter { $0.value.expected == digest && !$0.value.receiving }
                if let (id, upload) = waiting.max(by: { $0.value.bytes.readableBytes < $1.value.bytes.readableBytes }) {
                    return StartedUpload(id: id, offset: Int64(upload.bytes.readableBytes), resumed: true)
                }
            }
            let id = UploadID()
            state.uploads[id] = Upload(expected: digest)
            return StartedUpload(id: id, offset: 0, resumed: false)
        }
    }

    public func uploadOffset(_ id: UploadID) async throws(RegistryError) -> Int64 {
        guard let upload = storage.state.withLock({ $0.uploads[id] }) else {
            throw RegistryError.notFound("upload \(id)")
        }
        return Int64(upload.bytes.readableBytes)
    }

    public func append<Bytes: AsyncSequence>(_ id: UploadID, at offset: Int64, _ bytes: Bytes) async throws -> Int64
    where Bytes.Element == ByteBuffer {
        var upload = try hold(id)
        var hasher = try ContentHasher(restoring: upload.hashState)
        // Whatever happens, the bytes kept and the saved hash state describe the same prefix.
        defer {
            upload.hashState = hasher.savedState
            upload.touched = Date()
            release(id, upload)
        }
        guard offset == hasher.count else {
            throw RegistryError(
                .uploadOffsetMismatch,
                "upload \(id) is at offset \(hasher.count), not \(offset): resume from offset \(hasher.count)")
        }
        for try await var buffer in bytes {
            buffer.withUnsafeReadableBytes { hasher.update($0) }
            upload.bytes.writeBuffer(&buffer)
        }
        return hasher.count
    }

    public func commitUpload(_ id: UploadID, expecting expected: Digest) async throws(RegistryError) -> BlobInfo {
        let upload = try hold(id)
        let hasher: ContentHasher
        do {
            hasher = try ContentHasher(restoring: upload.hashState)
        } catch {
            release(id, upload)
            throw error
        }
        let actual = hasher.finalize()
        return try storage.state.withLock { state throws(RegistryError) in
            state.uploads.removeValue(forKey: id)
            guard actual == expected else {
                throw RegistryError(
                    .digestMismatch,
                    "digest mismatch: the \(hasher.count) bytes received hash to \(actual), not \(expected); nothing was stored"
                )
            }
            // Bytes already stored are kept; a fresh time starts garbage collection's grace period again.
            let bytes = state.blobs[expected]?.bytes ?? upload.bytes
            state.blobs[expected] = Blob(bytes: bytes, stored: Date())
            return BlobInfo(digest: expected, size: Int64(bytes.readableBytes))
        }
    }

    public func cancelUpload(_ id: UploadID) async throws(RegistryError) {
        _ = try hold(id)
        storage.state.withLock { _ = $0.uploads.removeValue(forKey: id) }
    }

    public func removeStaleUploads(untouchedSince cutoff: Date) async throws(RegistryError) -> [UploadID] {
        storage.state.withLock { state in
            let stale = state.uploads.filter { !$0.value.receiving && $0.value.touched < cutoff }.map(\.key)
            for id in stale { state.uploads.removeValue(forKey: id) }
            return stale.sorted { $0.value < $1.value }
        }
    }

    /// Takes exclusive use of an upload, as the file system store's flock does.
    private func hold(_ id: UploadID) throws(RegistryError) -> Upload {
        try storage.state.withLock { state throws(RegistryError) in
            guard var upload = state.uploads[id] else { throw RegistryError.notFound("upload \(id)") }
            guard !upload.receiving else {
                throw RegistryError(
                    .uploadBusy, "upload \(id) is receiving data on another request: wait for it, then resume")
            }
            upload.receiving = true
            state.uploads[id] = upload
            return upload
        }
    }

    private func release(_ id: UploadID, _ upload: Upload) {
        var upload = upload
        upload.receiving = false
        storage.state.withLock { state in
            // Cancelled or swept meanwhile: nothing to put back.
            if state.uploads[id] != nil { state.uploads[id] = upload }
        }
    }
}

private struct BufferReader: BlobReader {
    let bytes: ByteBuffer

    var size: Int64 { Int64(bytes.readableBytes) }

    func read(at offset: Int64, maxLength: Int) throws(RegistryError) -> ByteBuffer {
        let length = Int(max(0, min(Int64(maxLength), size - offset)))
        guard length > 0 else { return ByteBuffer() }
        return bytes.getSlice(at: bytes.readerIndex + Int(offset), length: length) ?? ByteBuffer()
    }
}
