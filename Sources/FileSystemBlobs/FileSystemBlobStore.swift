import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Blobs as files under `<data>/blobs/sha256/ab/<hex>`, uploads as files under `<data>/uploads/<id>`.
///
/// The hash of an upload is kept in memory beside its offset so that committing needs no second read.
/// After a restart the state is rebuilt by hashing the bytes already on disk the first time the upload
/// is touched again.
///
/// An upload started for an expected digest records it beside the upload (`<id>.digest`), so a client that
/// was killed finds its upload again by digest, and uploads untouched for longer than the server's TTL are
/// swept away.
public final class FileSystemBlobStore: BlobStore {
    private struct UploadState: Sendable {
        var offset: Int64
        var hasher: ContentHasher
    }

    private enum Slot: Sendable {
        case idle(UploadState)
        case busy
    }

    public let directory: DataDirectory
    private let uploads = Mutex<[UploadID: Slot]>([:])

    public init(directory: DataDirectory) {
        self.directory = directory
    }

    public func info(_ digest: Digest) throws(RegistryError) -> BlobInfo? {
        try POSIXFile.regularFileSize(directory.blob(digest).path).map { BlobInfo(digest: digest, size: $0) }
    }

    public func reader(_ digest: Digest) throws(RegistryError) -> any BlobReader {
        let path = directory.blob(digest).path
        guard try POSIXFile.regularFileSize(path) != nil else { throw RegistryError.notFound("blob \(digest)") }
        return try FileBlobReader(file: POSIXFile.openForReading(path))
    }

    public func read(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobBytes {
        let path = directory.blob(digest).path
        guard try POSIXFile.regularFileSize(path) != nil else { throw RegistryError.notFound("blob \(digest)") }
        let file = try POSIXFile.openForReading(path)
        let size = try file.size()
        guard range.lowerBound >= 0, range.upperBound <= size else {
            throw RegistryError(.integrity, "blob \(digest) holds \(size) bytes, not the \(range.upperBound) asked for")
        }
        return file.bytes(range)
    }

    public func list() async throws(RegistryError) -> [StoredBlob] {
        let blobs = directory.blobs
        return try await Self.blocking { () throws(RegistryError) in
            try ContentAddressedTree.files(in: blobs).map {
                StoredBlob(digest: $0.digest, size: $0.size, stored: $0.modified)
            }
        }
    }

    /// `quarantine/sha256/<hex>`: renamed out of the blob tree, both directories synced.
    public func quarantine(_ digest: Digest) async throws(RegistryError) {
        let directory = self.directory
        try await Self.blocking { () throws(RegistryError) in
            try POSIXFile.createDirectory(directory.quarantine.path)
            try POSIXFile.rename(
                directory.blob(digest).path, to: directory.quarantine.appendingPathComponent(digest.hex).path)
            try POSIXFile.syncDirectory(directory.quarantine.path)
            try POSIXFile.syncDirectory(directory.blobDirectory(digest).path)
        }
    }

    public func quarantined() async throws(RegistryError) -> [Digest] {
        let directory = self.directory
        return try await Self.blocking { () throws(RegistryError) in
            try POSIXFile.entries(directory.quarantine.path).compactMap { try? Digest(parsing: Digest.prefix + $0) }
        }
    }

    public func releaseQuarantine(_ digests: [Digest]) async throws(RegistryError) {
        guard !digests.isEmpty else { return }
        let directory = self.directory
        try await Self.blocking { () throws(RegistryError) in
            for digest in digests { try POSIXFile.remove(directory.quarantine.appendingPathComponent(digest.hex).path) }
            try POSIXFile.syncDirectory(directory.quarantine.path)
        }
    }

    /// Creates and removes a file where uploads are written.
    public func checkWritable() async throws(RegistryError) {
        let probe = directory.uploads.appendingPathComponent(".ready-\(UUID().uuidString.lowercased())").path
        try await Self.blocking { () throws(RegistryError) in
            let file = try POSIXFile.open(probe, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            try file.close()
            try POSIXFile.remove(probe)
        }
    }

    /// File-system calls that may wait on the disk, on the store's disk threads.
    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(RegistryError) -> T)
        async throws(RegistryError) -> T
    {
        do {
            return try await DiskThreads.pool.runIfActive { try body() }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError(.storageFailure, "the blob store's thread pool is not running: \(error)")
        }
    }

    public func createUpload() throws(RegistryError) -> UploadID {
        let id = UploadID()
        let file = try POSIXFile.open(directory.upload(id).path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        try file.close()
        uploads.withLock { $0[id] = .idle(UploadState(offset: 0, hasher: ContentHasher())) }
        return id
    }

    public func startUpload(expecting digest: Digest) throws(RegistryError) -> StartedUpload {
        var best: StartedUpload?
        for id in try uploadIDs(expecting: digest) {
            let receiving = uploads.withLock { slots in
                if case .busy = slots[id] { return true }
                return false
            }
            guard !receiving, let offset = try? uploadOffset(id) else { continue }
            if offset >= best?.offset ?? -1 { best = StartedUpload(id: id, offset: offset, resumed: true) }
        }
        if let best { return best }
        let id = try createUpload()
        // Written in place, not through a temporary file that a crash would leave behind under another name: a
        // record cut short matches no digest, so its upload is not resumed and is swept with its TTL.
        do throws(RegistryError) {
            let file = try POSIXFile.open(
                directory.uploadExpectation(id).path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            try ByteBuffer(string: digest.description).withUnsafeReadableBytes { bytes throws(RegistryError) in
                try file.write(bytes, at: 0)
            }
            try file.close()
        } catch {
            discard(id)
            throw error
        }
        return StartedUpload(id: id, offset: 0, resumed: false)
    }

    /// Uploads whose recorded expectation is `digest`.
    private func uploadIDs(expecting digest: Digest) throws(RegistryError) -> [UploadID] {
        let wanted = Array(digest.description.utf8)
        return try POSIXFile.entries(directory.uploads.path).compactMap { name -> UploadID? in
            guard name.hasSuffix(DataDirectory.expectationSuffix),
                let id = try? UploadID(name.dropLast(DataDirectory.expectationSuffix.count)),
                let recorded = FileManager.default.contents(atPath: directory.uploadExpectation(id).path),
                Array(recorded) == wanted
            else { return nil }
            return id
        }
    }

    public func removeStaleUploads(untouchedSince cutoff: Date) throws(RegistryError) -> [UploadID] {
        var removed: [UploadID] = []
        for name in try POSIXFile.entries(directory.uploads.path) {
            let path = directory.uploads.appendingPathComponent(name).path
            guard let status = try? POSIXFile.status(path), status.modified < cutoff else { continue }
            if let id = try? UploadID(name) {
                let claimed = uploads.withLock { slots in
                    if case .busy = slots[id] { return false }
                    slots[id] = .busy
                    return true
                }
                guard claimed else { continue }
                discard(id)
                removed.append(id)
            } else if name.hasSuffix(DataDirectory.expectationSuffix),
                let id = try? UploadID(name.dropLast(DataDirectory.expectationSuffix.count))
            {
                // The upload itself is gone (a crash between the two removals): drop what was left of it.
                if try POSIXFile.regularFileSize(directory.upload(id).path) == nil { try POSIXFile.remove(path) }
            } else if try POSIXFile.regularFileSize(path) != nil {
                // Neither an upload nor its record: what an interrupted write of an earlier version left.
                try POSIXFile.remove(path)
            }
        }
        return removed
    }

    public func uploadOffset(_ id: UploadID) throws(RegistryError) -> Int64 {
        let known: Int64? = uploads.withLock { slots in
            if case .idle(let state) = slots[id] { return state.offset }
            return nil
        }
        if let known { return known }
        guard let size = try POSIXFile.regularFileSize(directory.upload(id).path) else {
            throw RegistryError.notFound("upload \(id)")
        }
        return size
    }

    public func append<Bytes: AsyncSequence>(_ id: UploadID, at offset: Int64, _ bytes: Bytes) async throws -> Int64
    where Bytes.Element == ByteBuffer {
        var state = try checkOut(id)
        guard offset == state.offset else {
            checkIn(id, state)
            throw RegistryError(
                .uploadOffsetMismatch,
                "upload \(id) is at offset \(state.offset), not \(offset): resume from offset \(state.offset)"
            )
        }
        let file: POSIXFile
        do {
            file = try POSIXFile.open(directory.upload(id).path, flags: O_WRONLY)
        } catch {
            checkIn(id, state)
            throw error
        }
        // Whatever happens, the bytes on disk and the hash state must describe the same prefix.
        defer {
            try? file.truncate(to: state.offset)
            try? file.close()
            checkIn(id, state)
        }
        for try await buffer in bytes {
            try buffer.withUnsafeReadableBytes { raw throws(RegistryError) in
                try file.write(raw, at: state.offset)
                state.hasher.update(raw)
            }
            state.offset += Int64(buffer.readableBytes)
        }
        return state.offset
    }

    public func commitUpload(_ id: UploadID, expecting expected: Digest) throws(RegistryError) -> BlobInfo {
        let state = try checkOut(id)
        let uploadPath = directory.upload(id).path
        let actual = state.hasher.finalize()
        guard actual == expected else {
            discard(id)
            throw RegistryError(
                .digestMismatch,
                "digest mismatch: the \(state.offset) bytes received hash to \(actual), not \(expected); nothing was stored"
            )
        }
        do {
            let file = try POSIXFile.open(uploadPath, flags: O_RDONLY)
            try file.sync()
            try file.close()
            let target = directory.blob(expected)
            let parent = directory.blobDirectory(expected).path
            if try POSIXFile.regularFileSize(target.path) != nil {
                try POSIXFile.remove(uploadPath)
                // The stored copy may be unreferenced garbage; a fresh time starts garbage collection's grace
                // period again, so the push that uploaded it has time to publish.
                try POSIXFile.touch(target.path)
            } else {
                try POSIXFile.createDirectory(parent)
                try POSIXFile.rename(uploadPath, to: target.path)
                try POSIXFile.syncDirectory(parent)
            }
        } catch {
            checkIn(id, state)
            throw error
        }
        try? POSIXFile.remove(directory.uploadExpectation(id).path)
        uploads.withLock { _ = $0.removeValue(forKey: id) }
        return BlobInfo(digest: expected, size: state.offset)
    }

    public func cancelUpload(_ id: UploadID) throws(RegistryError) {
        _ = try checkOut(id)
        discard(id)
    }

    private func discard(_ id: UploadID) {
        try? POSIXFile.remove(directory.upload(id).path)
        try? POSIXFile.remove(directory.uploadExpectation(id).path)
        uploads.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// Takes exclusive use of an upload, rebuilding its hash state from disk if this process has none.
    private func checkOut(_ id: UploadID) throws(RegistryError) -> UploadState {
        enum Claim {
            case state(UploadState)
            case busy, rebuild
        }
        let claim: Claim = uploads.withLock { slots in
            switch slots[id] {
            case .idle(let state):
                slots[id] = .busy
                return .state(state)
            case .busy:
                return .busy
            case nil:
                slots[id] = .busy
                return .rebuild
            }
        }
        switch claim {
        case .state(let state):
            return state
        case .busy:
            throw RegistryError(
                .uploadBusy, "upload \(id) is receiving data on another request: wait for it, then resume")
        case .rebuild:
            do {
                return try rehash(id)
            } catch {
                uploads.withLock { _ = $0.removeValue(forKey: id) }
                throw error
            }
        }
    }

    private func checkIn(_ id: UploadID, _ state: UploadState) {
        uploads.withLock { $0[id] = .idle(state) }
    }

    private func rehash(_ id: UploadID) throws(RegistryError) -> UploadState {
        let path = directory.upload(id).path
        guard try POSIXFile.regularFileSize(path) != nil else { throw RegistryError.notFound("upload \(id)") }
        let file = try POSIXFile.openForReading(path)
        let (hasher, size) = try file.hashContents()
        try file.close()
        return UploadState(offset: size, hasher: hasher)
    }
}

final class FileBlobReader: BlobReader {
    let file: POSIXFile
    let size: Int64

    init(file: POSIXFile) throws(RegistryError) {
        self.file = file
        self.size = try file.size()
    }

    func read(at offset: Int64, maxLength: Int) throws(RegistryError) -> ByteBuffer {
        let length = Int(max(0, min(Int64(maxLength), size - offset)))
        guard length > 0 else { return ByteBuffer() }
        let buffer = try file.readBuffer(at: offset, length: length)
        guard buffer.readableBytes == length else {
            throw RegistryError(.integrity, "blob file \(file.path) is shorter than expected")
        }
        return buffer
    }
}
