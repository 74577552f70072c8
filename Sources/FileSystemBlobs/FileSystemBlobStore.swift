import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Blobs as files under `<data>/blobs/sha256/ab/<hex>`, uploads as files under `<data>/uploads/<id>`.
///
/// An upload keeps everything needed to go on with it on disk, so any instance of the store on the directory
/// can: its bytes (`<id>`), the digest it was started for (`<id>.digest`, by which a client that was killed
/// finds it again) and the hash state of its first bytes (`<id>.hash`, saved when each append ends; bytes past
/// it, which a crash may leave, are hashed from the file). An upload receiving bytes holds an flock on its
/// file, which makes a second writer anywhere fail with `.uploadBusy`. Uploads untouched for longer than the
/// server's TTL are swept away.
public final class FileSystemBlobStore: BlobStore {
    public let directory: DataDirectory

    public init(directory: DataDirectory) {
        self.directory = directory
    }

    public func info(_ digest: Digest) async throws(RegistryError) -> BlobInfo? {
        try POSIXFile.regularFileSize(directory.blob(digest).path).map { BlobInfo(digest: digest, size: $0) }
    }

    public func reader(_ digest: Digest) throws(RegistryError) -> any BlobReader {
        let path = directory.blob(digest).path
        guard try POSIXFile.regularFileSize(path) != nil else { throw RegistryError.notFound("blob \(digest)") }
        return try FileBlobReader(file: POSIXFile.openForReading(path))
    }

    public func read(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobBytes {
        try open(digest, holding: range).bytes(range)
    }

    public func fileRegion(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobFileRegion? {
        // The file holds the range and never changes: a blob is replaced whole, by a rename.
        BlobFileRegion(descriptor: try open(digest, holding: range).releaseDescriptor(), range: range)
    }

    /// The blob's file, open for reading, once it is known to hold `range`.
    private func open(_ digest: Digest, holding range: Range<Int64>) throws(RegistryError) -> POSIXFile {
        let path = directory.blob(digest).path
        guard try POSIXFile.regularFileSize(path) != nil else { throw RegistryError.notFound("blob \(digest)") }
        let file = try POSIXFile.openForReading(path)
        let size = try file.size()
        guard range.lowerBound >= 0, range.upperBound <= size else {
            throw RegistryError(.integrity, "blob \(digest) holds \(size) bytes, not the \(range.upperBound) asked for")
        }
        return file
    }

    /// The file system cannot hand out URLs: the registry serves the bytes.
    public func directDownloadURL(_ digest: Digest, validFor: Duration) async throws(RegistryError) -> URL? { nil }

    public func put<Bytes: AsyncSequence & Sendable>(_ bytes: Bytes, expecting digest: Digest) async throws -> BlobInfo
    where Bytes.Element == ByteBuffer {
        try await putByUpload(bytes, expecting: digest)
    }

    /// With a cutoff, the blob is first renamed aside (`<hex>.deleting`, in its directory), so that an upload
    /// committing the same bytes from then on puts a new file in place, which stays; the renamed file is then
    /// removed unless its time shows it was stored again before the rename, in which case it goes back. A
    /// crash in between leaves the renamed file, which `restoreInterruptedDeletions` puts back.
    public func delete(_ digest: Digest, storedBefore cutoff: Date?) async throws(RegistryError) -> Bool {
        let directory = self.directory
        return try await Self.blocking { () throws(RegistryError) in
            let path = directory.blob(digest).path
            guard try POSIXFile.regularFileSize(path) != nil else { return false }
            let parent = directory.blobDirectory(digest).path
            guard let cutoff else {
                try POSIXFile.remove(path)
                try POSIXFile.syncDirectory(parent)
                return true
            }
            let aside = path + DataDirectory.deletingSuffix
            try POSIXFile.rename(path, to: aside)
            if let status = try POSIXFile.status(aside), status.modified >= cutoff {
                // Replacing a copy an upload put there since holds the same bytes, with as fresh a time.
                try POSIXFile.rename(aside, to: path)
                return false
            }
            try POSIXFile.remove(aside)
            try POSIXFile.syncDirectory(parent)
            return true
        }
    }

    /// Puts back the blobs a crash left renamed aside in the middle of a deletion: whether they were to go is
    /// decided again by the next collection. Run before serving.
    public func restoreInterruptedDeletions() throws(RegistryError) {
        for prefix in try POSIXFile.entries(directory.blobs.path) where prefix.utf8.count == 2 {
            let parent = directory.blobs.appendingPathComponent(prefix).path
            for name in try POSIXFile.entries(parent) where name.hasSuffix(DataDirectory.deletingSuffix) {
                let aside = parent + "/" + name
                try POSIXFile.rename(aside, to: String(aside.dropLast(DataDirectory.deletingSuffix.count)))
                try POSIXFile.syncDirectory(parent)
            }
        }
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

    /// A finished upload is renamed into place.
    public let copiesUploadsWithoutDigest = false

    public func startUpload(expecting digest: Digest?) async throws(RegistryError) -> StartedUpload {
        let directory = self.directory
        return try await Self.blocking { () throws(RegistryError) in
            try Self.startUpload(in: directory, expecting: digest)
        }
    }

    private static func startUpload(in directory: DataDirectory, expecting digest: Digest?) throws(RegistryError)
        -> StartedUpload
    {
        if let digest {
            var best: StartedUpload?
            for id in try uploadIDs(in: directory, expecting: digest) {
                // One receiving bytes is busy; one whose bytes cannot be read is left to the sweep.
                guard let held = try? HeldUpload(id, in: directory, waiting: false) else { continue }
                let offset = held.hasher.count
                held.release()
                if offset >= best?.offset ?? -1 { best = StartedUpload(id: id, offset: offset, resumed: true) }
            }
            if let best { return best }
        }
        let id = UploadID()
        let file = try POSIXFile.open(directory.upload(id).path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        try file.close()
        guard let digest else { return StartedUpload(id: id, offset: 0, resumed: false) }
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
            Self.removeFiles(of: id, in: directory)
            throw error
        }
        return StartedUpload(id: id, offset: 0, resumed: false)
    }

    /// Uploads whose recorded expectation is `digest`.
    private static func uploadIDs(in directory: DataDirectory, expecting digest: Digest) throws(RegistryError)
        -> [UploadID]
    {
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

    public func removeStaleUploads(untouchedSince cutoff: Date) async throws(RegistryError) -> [UploadID] {
        let directory = self.directory
        return try await Self.blocking { () throws(RegistryError) in
            var removed: [UploadID] = []
            for name in try POSIXFile.entries(directory.uploads.path) {
                let path = directory.uploads.appendingPathComponent(name).path
                guard let status = try? POSIXFile.status(path), status.modified < cutoff else { continue }
                if let id = try? UploadID(name) {
                    // One receiving bytes now is not stale, whatever its file's time says.
                    guard let file = try? POSIXFile.open(path, flags: O_RDONLY), (try? file.tryLock()) == true else {
                        continue
                    }
                    Self.removeFiles(of: id, in: directory)
                    try? file.close()
                    removed.append(id)
                } else if let id = DataDirectory.uploadRecordOwner(name) {
                    // The upload itself is gone (a crash between the removals): drop what was left of it.
                    if try POSIXFile.regularFileSize(directory.upload(id).path) == nil { try POSIXFile.remove(path) }
                } else if try POSIXFile.regularFileSize(path) != nil {
                    // Neither an upload nor its record: what an interrupted write of an earlier version left.
                    try POSIXFile.remove(path)
                }
            }
            return removed
        }
    }

    public func uploadOffset(_ id: UploadID) async throws(RegistryError) -> Int64 {
        guard let size = try POSIXFile.regularFileSize(directory.upload(id).path) else {
            throw RegistryError.notFound("upload \(id)")
        }
        return size
    }

    public func append<Bytes: AsyncSequence>(_ id: UploadID, at offset: Int64, _ bytes: Bytes) async throws -> Int64
    where Bytes.Element == ByteBuffer {
        let directory = self.directory
        let held = try await Self.blocking { () throws(RegistryError) in try HeldUpload(id, in: directory) }
        var hasher = held.hasher
        // Whatever happens, the bytes on disk and the saved hash state describe the same prefix.
        defer {
            try? held.file.truncate(to: hasher.count)
            try? Self.saveHashState(hasher, of: id, in: directory)
            held.release()
        }
        guard offset == hasher.count else {
            throw RegistryError(
                .uploadOffsetMismatch,
                "upload \(id) is at offset \(hasher.count), not \(offset): resume from offset \(hasher.count)"
            )
        }
        // The commit's fsync then waits for the last bytes only.
        var pacer = WritebackPacer(from: offset)
        for try await buffer in bytes {
            try buffer.withUnsafeReadableBytes { raw throws(RegistryError) in
                try held.file.write(raw, at: hasher.count)
                hasher.update(raw)
            }
            pacer.wrote(upTo: hasher.count, in: held.file)
        }
        return hasher.count
    }

    public func commitUpload(_ id: UploadID, expecting expected: Digest) async throws(RegistryError) -> BlobInfo {
        let directory = self.directory
        return try await Self.blocking { () throws(RegistryError) in
            let held = try HeldUpload(id, in: directory)
            defer { held.release() }
            let actual = held.hasher.finalize()
            guard actual == expected else {
                Self.removeFiles(of: id, in: directory)
                throw RegistryError(
                    .digestMismatch,
                    "digest mismatch: the \(held.hasher.count) bytes received hash to \(actual), not \(expected); nothing was stored"
                )
            }
            try held.file.sync()
            let uploadPath = directory.upload(id).path
            let parent = directory.blobDirectory(expected).path
            // The time of the blob is when it was stored: a copy already stored may be unreferenced garbage, and
            // replacing it (same bytes) starts garbage collection's grace period again, so the push has time to
            // publish. A rename, never a touch of the old file, which a collection may be renaming aside.
            try POSIXFile.touch(uploadPath)
            try POSIXFile.createDirectory(parent)
            try POSIXFile.rename(uploadPath, to: directory.blob(expected).path)
            try POSIXFile.syncDirectory(parent)
            Self.removeFiles(of: id, in: directory)
            return BlobInfo(digest: expected, size: held.hasher.count)
        }
    }

    public func cancelUpload(_ id: UploadID) async throws(RegistryError) {
        let directory = self.directory
        try await Self.blocking { () throws(RegistryError) in
            let held = try HeldUpload(id, in: directory)
            Self.removeFiles(of: id, in: directory)
            held.release()
        }
    }

    /// Removes an upload's bytes and records (those already gone are no error).
    private static func removeFiles(of id: UploadID, in directory: DataDirectory) {
        try? POSIXFile.remove(directory.upload(id).path)
        try? POSIXFile.remove(directory.uploadExpectation(id).path)
        try? POSIXFile.remove(directory.uploadHashState(id).path)
        try? POSIXFile.remove(directory.uploadHashStateDraft(id).path)
    }

    /// Replaces the saved hash state whole (a rename): a crash leaves the old state or the new, and an old
    /// state only means hashing again the bytes past it.
    private static func saveHashState(_ hasher: ContentHasher, of id: UploadID, in directory: DataDirectory)
        throws(RegistryError)
    {
        let path = directory.uploadHashState(id).path
        let temporary = directory.uploadHashStateDraft(id).path
        let file = try POSIXFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        try ByteBuffer(bytes: hasher.savedState).withUnsafeReadableBytes { bytes throws(RegistryError) in
            try file.write(bytes, at: 0)
        }
        try file.close()
        try POSIXFile.rename(temporary, to: path)
    }

    /// Exclusive use of one upload, with the hash of every byte it holds: its file, open and flocked.
    private struct HeldUpload {
        let file: POSIXFile
        let hasher: ContentHasher

        /// A process this one spawns shares every open file, the lock with it, from its fork until its exec
        /// closes them: an upload's file open at that moment stays locked that long after it is closed here.
        /// So a lock is tried for up to a second (`waiting`) before the upload is called busy; a look that only
        /// skips busy uploads does not wait.
        init(_ id: UploadID, in directory: DataDirectory, waiting: Bool = true) throws(RegistryError) {
            let path = directory.upload(id).path
            guard try POSIXFile.regularFileSize(path) != nil else { throw RegistryError.notFound("upload \(id)") }
            let file = try POSIXFile.open(path, flags: O_RDWR)
            var locked = try file.tryLock()
            for _ in 0..<(waiting ? 20 : 0) where !locked {
                usleep(50_000)
                locked = try file.tryLock()
            }
            guard locked else {
                try? file.close()
                throw RegistryError(
                    .uploadBusy, "upload \(id) is receiving data on another request: wait for it, then resume")
            }
            // Removed (committed, cancelled, swept) between the look and the lock.
            guard try POSIXFile.regularFileSize(path) != nil else {
                try? file.close()
                throw RegistryError.notFound("upload \(id)")
            }
            do {
                let size = try file.size()
                let saved = FileManager.default.contents(atPath: directory.uploadHashState(id).path)
                    .flatMap { try? ContentHasher(restoring: Array($0)) }
                // A state past the bytes on disk (they were lost in a crash) is of no use: hash from the start.
                let start = saved.flatMap { $0.count <= size ? $0 : nil } ?? ContentHasher()
                self.hasher = try file.hashContents(continuing: start).hasher
                self.file = file
            } catch {
                try? file.close()
                throw error
            }
        }

        func release() {
            try? file.close()
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
